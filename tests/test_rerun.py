"""tools/rerun.py, the Fashion-MNIST re-run over several sessions: the worktree is cleared of the old scale's runs
once, staged runs go back in so they are skipped, and finished files are copied out without ever overwriting one."""
import importlib.util
from pathlib import Path
import pytest


def _tool(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        'rerun', Path(__file__).resolve().parent.parent / 'tools' / 'rerun.py')
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    monkeypatch.setattr(m, 'STAGE', tmp_path / 'stage')
    return m


def test_no_rerun_set_up(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match='no re-run is set up'):
        _tool(tmp_path, monkeypatch).commit()


def test_prepare_and_collect_never_overwrite(tmp_path, monkeypatch):
    m = _tool(tmp_path, monkeypatch)
    w = tmp_path / 'tree'
    res = w / 'results' / 'fashion-mnist'
    (res / 'table1').mkdir(parents=True)
    (res / 'table1' / 'old-seed0.json').write_text('{"old": 1}')      # the old scale's run
    (res / 'calibration').mkdir()
    (res / 'calibration' / 'p.json').write_text('{}')
    (res / 'baselines.json').write_text('{"old": 1}')
    staged = m.STAGE / 'fashion-mnist' / 'table1' / 'a-seed0.json'      # finished in a session before
    staged.parent.mkdir(parents=True)
    staged.write_text('{"a": 0}')
    m.prepare(w)
    assert not (res / 'table1' / 'old-seed0.json').exists() and not (res / 'baselines.json').exists()
    assert (res / 'calibration' / 'p.json').exists()
    assert (res / 'table1' / 'a-seed0.json').read_text() == '{"a": 0}'
    (res / 'table1' / 'b-seed0.json').write_text('{"b": 0}')            # finished in this session
    (res / 'table1' / 'c-seed0.json.lock').write_text('')               # running: not copied
    assert m.collect(w) == 1 and (m.STAGE / 'fashion-mnist' / 'table1' / 'b-seed0.json').exists()
    assert m.collect(w) == 0
    (res / 'table1' / 'b-seed0.json').write_text('{"b": 1}')
    with pytest.raises(SystemExit, match='differs'):
        m.collect(w)
    assert (m.STAGE / 'fashion-mnist' / 'table1' / 'b-seed0.json').read_text() == '{"b": 0}'
    m.prepare(w)                                                        # again: nothing removed
    assert (res / 'table1' / 'b-seed0.json').exists()
