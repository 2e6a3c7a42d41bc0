"""Repository-wide pytest set-up.

Scipion reads its configuration when ``pyworkflow`` is first imported, so the headless Scipion
home (``.scipion/``) is selected here, before any test module imports the plugin.
"""

import deepqs_headless

deepqs_headless.activate()
