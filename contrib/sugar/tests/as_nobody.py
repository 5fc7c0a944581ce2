# Run by test_model.test_not_authorized as the user nobody: read the
# daemon's version, ask for a Check, print what the model made of it.

import json
import os
import sys

sys.path.append(os.environ['SUGARTEST_EXT'])

from harness import wait_until  # noqa: E402
from cpsection.systemupdate import model  # noqa: E402

m = model.SystemUpdateModel()
wait_until(lambda: m.get_phase() == model.PHASE_IDLE, 'the daemon')
answers = []
m.connect('check-finished', lambda m, result: answers.append(result))
m.check()
wait_until(lambda: answers, 'Check to answer')
error = m.get_error()
json.dump({'current_version': m.get_current_version(),
           'error': error.name if error else None,
           'sentence': error.sentence if error else None}, sys.stdout)
m.close()
