# gunicorn -c deploy/gunicorn.conf.py sealgate.server.wsgi:app
# The same settings `sealgate serve` uses, read from $SEALGATE_HOME/sealgate.toml.
from sealgate import config as _config
from sealgate.server.gunicorn import settings as _settings

globals().update(_settings(_config.load()))
