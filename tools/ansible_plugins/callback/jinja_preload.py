# Loads ansible-core's Jinja filters and tests in the controller before it
# forks its first worker.
#
# Why: Ansible runs every host-task in a worker forked from the controller, and
# the controller itself loads the built-in Jinja plugins only when it templates
# a filter or a test. Until then each worker loads them again, on its own: about
# a fifth of a worker's CPU in this project's runs (profiled on the bad-input
# preflight run, ~6,000 host-tasks). Loaded once here, every worker inherits
# them. Nothing is templated on any host and no result changes.
#
# Enabled for the test runs only (.config/molecule/config.yml, tests/conftest.py).
from __future__ import annotations

DOCUMENTATION = """
    name: jinja_preload
    type: aggregate
    short_description: Load the Jinja filters and tests once in the controller
    description:
        - Templates one filter and one test in the controller when a playbook
          starts, so that the workers it forks inherit the loaded Jinja plugins.
    requirements:
        - enable in configuration (callbacks_enabled)
"""

from ansible.plugins.callback import CallbackBase
from ansible.template import Templar, trust_as_template


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "jinja_preload"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        result = Templar(loader=playbook.get_loader()).template(trust_as_template("{{ 'X' | lower }}{{ 'x' is string }}"))
        self._display.vvvv(f"jinja_preload: Jinja filters and tests loaded ({result})")
