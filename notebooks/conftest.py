"""pytest settings for running the chapters with nbval (``pytest --nbval-lax notebooks``).

Progress bars are switched off in the kernels nbval starts: they inherit this environment. In a
notebook each bar redraw is a widget message, and nbval waits at most 5 s for a cell's messages
once the cell has finished; a chapter with thousands of redraws can exceed that on a slow machine.
"""
import os

os.environ["MIXCON_LITE_PROGRESS"] = "0"
