import configparser
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='session')
def root(): return ROOT

@pytest.fixture(scope='session')
def settings():
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini')
    return cfg['DEFAULT']

def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: takes minutes; skipped unless BYOLTHEORY_SLOW=1 (make book runs them)')

def pytest_collection_modifyitems(config, items):
    import os
    if os.environ.get('BYOLTHEORY_SLOW') == '1': return
    skip = pytest.mark.skip(reason='slow: set BYOLTHEORY_SLOW=1 (make book does)')
    for item in items:
        if 'slow' in item.keywords: item.add_marker(skip)
