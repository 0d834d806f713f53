"""Stand-in for pip's get-pip.py, which ansible-test downloads from a host these machines cannot reach.

ansible-test runs it inside each new virtualenv with pip's install arguments. It installs pip from
the interpreter's own ensurepip, then the requested packages with that pip from the configured index.
"""

import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *args])
