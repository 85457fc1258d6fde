"""tools/rerun.py, the Fashion-MNIST re-run over several sessions: the worktree is cleared of the old scale's runs
once, staged runs go back in so they are skipped, and only the re-run commit's finished files are copied out, never
overwriting one; a curve is copied only when complete."""
import importlib.util, json
from pathlib import Path
import pytest

SHA = 'a' * 40
PLAN = {'grids': {'table1': []}, 'curve_epochs': 2, 'curve_work': 0}


def _tool(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        'rerun', Path(__file__).resolve().parent.parent / 'tools' / 'rerun.py')
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    monkeypatch.setattr(m, 'STAGE', tmp_path / 'stage')
    return m


def _run(path, commit=SHA, **more):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(git_commit=commit, **more)))


def test_no_rerun_set_up(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match='no re-run is set up'):
        _tool(tmp_path, monkeypatch).commit()


def test_prepare_and_collect_never_overwrite_or_mix(tmp_path, monkeypatch):
    m = _tool(tmp_path, monkeypatch)
    w = tmp_path / 'tree'
    res = w / 'results' / 'fashion-mnist'
    _run(res / 'table1' / 'old-seed0.json', commit='b' * 40)           # the old scale's run
    _run(res / 'calibration' / 'p.json', commit='b' * 40)
    _run(res / 'baselines.json', commit='b' * 40)
    _run(m.STAGE / 'fashion-mnist' / 'table1' / 'a-seed0.json', k=0)   # finished in a session before
    assert m.collect(w, PLAN, SHA) == 0                                 # collect clears the old scale first
    assert not (res / 'table1' / 'old-seed0.json').exists() and not (res / 'baselines.json').exists()
    assert (res / 'calibration' / 'p.json').exists()
    assert json.loads((res / 'table1' / 'a-seed0.json').read_text())['k'] == 0
    _run(res / 'table1' / 'b-seed0.json', k=0)                          # finished in this session
    (res / 'table1' / 'c-seed0.json.lock').write_text('')               # running: not copied
    _run(res / 'curve-linear.json', points=[{'epoch': 1}])              # a curve half done: not copied
    assert m.collect(w, PLAN, SHA) == 1 and (m.STAGE / 'fashion-mnist' / 'table1' / 'b-seed0.json').exists()
    _run(res / 'curve-linear.json', points=[{'epoch': 1}, {'epoch': 2}])
    assert m.collect(w, PLAN, SHA) == 1 and (m.STAGE / 'fashion-mnist' / 'curve-linear.json').exists()
    _run(res / 'table1' / 'b-seed0.json', k=1)
    with pytest.raises(SystemExit, match='differs'):
        m.collect(w, PLAN, SHA)
    assert json.loads((m.STAGE / 'fashion-mnist' / 'table1' / 'b-seed0.json').read_text())['k'] == 0
    _run(res / 'table1' / 'b-seed0.json', k=0)
    _run(res / 'table1' / 'd-seed0.json', commit='c' * 40)              # another commit's run
    with pytest.raises(SystemExit, match="not computed by the re-run's commit"):
        m.collect(w, PLAN, SHA)


def test_the_plan_estimate_counts_a_config_once(tmp_path, monkeypatch):
    m = _tool(tmp_path, monkeypatch)
    run = lambda c, p='bf16', n=100: dict(name='x', config=c, precision=p, work=n)
    plan = {'grids': {'t1': [run('a'), run('b')], 't8': [run('a')], 'fp': [run('c', 'fp32')]},
            'curve_epochs': 2, 'curve_work': 50}
    assert m.estimate(plan) == pytest.approx({'bf16': (200 + 2 * 50) / 1e6, 'fp32': 100 / 1e6})
    assert m.queue({'grids': {'fig2': [], 'table8': [], 'table1': []}}) == ['table1', 'table8', 'fig2']


def test_what_is_left_counts_a_config_once_and_its_copies_as_done(tmp_path, monkeypatch):
    m = _tool(tmp_path, monkeypatch)
    run = lambda n, c, w=100: dict(name=n, config=c, precision='bf16', work=w)
    plan = {'grids': {'t6': [run('a.json', 'a'), run('b.json', 'b')],
                      't8': [run('a.json', 'a'), run('c.json', 'c', 300)]},
            'curve_epochs': 2, 'curve_work': 50}
    assert m.remaining(plan) == (100 + 100 + 300 + 2 * 50, 0)  # a, b, c once each
    _run(m.STAGE / 'fashion-mnist' / 't6' / 'a.json', train_seconds=7.0)  # t8's twin not yet copied
    _run(m.STAGE / 'fashion-mnist' / 'curve-linear.json', points=[])
    assert m.remaining(plan) == (100 + 300 + 50, 7.0)


def test_verify_at_reruns_with_a_commits_code(tmp_path):
    "tools/verify_at.py trains a run's recorded config with another commit's code, in a worktree it removes."
    import dataclasses, subprocess, sys
    from byoltheory.byol import TrainConfig, train
    here = Path(__file__).resolve().parent.parent
    head = subprocess.run(['git', '-C', str(here), 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          check=True).stdout.strip()
    cfg = TrainConfig(dataset='digits', subset=64, backbone='small', width=4, epochs=1, probe_epochs=1,
                      batch_size=16, threads=1)
    m = train(cfg, tmp_path / 'run', progress=False)
    run = tmp_path / 'x-seed0.json'
    run.write_text(json.dumps(dict(m, config=dataclasses.asdict(cfg.resolved()), grid='g', scale='digits',
                                   cell='c', seed=0, git_commit=head, torch_threads=1)))
    spec = importlib.util.spec_from_file_location('verify_at', here / 'tools' / 'verify_at.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    again = tool.rerun_at(run, head)
    assert again['knn_top1'] == m['knn_top1'] and again['feature_std'] == m['feature_std']
    worktrees = subprocess.run(['git', '-C', str(here), 'worktree', 'list'], capture_output=True, text=True).stdout
    assert str(tmp_path) not in worktrees                                # removed again


BASE = "SUBSET = 10_000\n" + "".join(f"X{i} = {i}\n" for i in range(8)) + "LAST = 1\n"


def test_switch_only_when_complete_and_keeps_calibration(tmp_path, monkeypatch):
    """switch: refuses while a planned file is missing; then the staged runs replace the old scale's (calibration
    kept), and the scale change and the chapters' drafts are applied."""
    import subprocess
    m = _tool(tmp_path, monkeypatch)
    repo = tmp_path / 'repo'
    git = lambda *a: subprocess.run(['git', '-C', str(repo), *a], check=True, capture_output=True, text=True).stdout
    commit = lambda msg: git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qam', msg)
    (repo / 'byoltheory').mkdir(parents=True)
    (repo / 'byoltheory' / 'scale.py').write_text(BASE)
    git('init', '-q'); git('add', '.'); commit('base')
    (repo / 'byoltheory' / 'scale.py').write_text(BASE.replace('10_000', '20_000'))
    commit('the re-run commit')
    sha = git('rev-parse', 'HEAD').strip()
    (repo / 'byoltheory' / 'scale.py').write_text(BASE.replace('LAST = 1', 'LAST = 2'))  # restored, edited on
    (repo / 'nbs').mkdir()
    (repo / 'nbs' / 'ch.ipynb').write_text('the old scale\nholds\n')
    git('add', '.'); commit('restore')
    (repo / 'nbs' / 'ch.ipynb').write_text('the new scale\nholds\n')              # a chapter's draft
    drafts = git('diff', '--', 'nbs')
    git('checkout', '-q', '--', '.')
    monkeypatch.setattr(m, 'HERE', repo)
    monkeypatch.setattr(m, 'STAGE', repo / 'results' / 'rerun')
    monkeypatch.setattr(m, '_alive', lambda w: [])
    monkeypatch.setattr(m, 'tree', lambda sha: None)
    plan = {'grids': {'table1': [dict(name='a-seed0.json')]}}
    res, stage = repo / 'results' / 'fashion-mnist', m.STAGE / 'fashion-mnist'
    _run(res / 'table1' / 'old-seed0.json', commit='b' * 40)
    _run(res / 'calibration' / 'p.json', commit='b' * 40)
    _run(stage / 'table1' / 'a-seed0.json')
    _run(stage / 'baselines.json')
    _run(stage / 'curve-linear.json')
    (m.STAGE / m.DRAFTS).write_text(drafts)
    assert [str(p) for p in m.missing(plan)] == ['fashion-mnist/curve-directpred.json']
    with pytest.raises(SystemExit, match='incomplete'):
        m.switch(sha, plan)
    assert (res / 'table1' / 'old-seed0.json').exists() and stage.exists()     # nothing changed
    _run(stage / 'curve-directpred.json')
    m.switch(sha, plan, check=True)                                             # reports only
    assert stage.exists()
    (repo / 'byoltheory' / 'scale.py').write_text(BASE.replace('SUBSET = 10_000', 'SUBSET = 5'))
    with pytest.raises(SystemExit, match='by hand'):                            # the change no longer applies
        m.switch(sha, plan)
    assert (res / 'table1' / 'old-seed0.json').exists() and stage.exists()
    git('checkout', '-q', '--', '.')
    (repo / 'nbs' / 'ch.ipynb').write_text('an edit on the main line\nholds\n')
    commit('the main line edits the chapter the drafts rewrite')
    with pytest.raises(SystemExit, match='apply first'):                        # the drafts no longer apply
        m.switch(sha, plan)
    assert (res / 'table1' / 'old-seed0.json').exists() and stage.exists()
    git('-c', 'user.name=t', '-c', 'user.email=t@t', 'revert', '--no-edit', 'HEAD')
    m.switch(sha, plan)
    assert not m.STAGE.exists() and (res / 'calibration' / 'p.json').exists()
    assert sorted(p.name for p in (res / 'table1').iterdir()) == ['a-seed0.json']
    want = BASE.replace('10_000', '20_000').replace('LAST = 1', 'LAST = 2')  # the change, and main's edit
    assert (repo / 'byoltheory' / 'scale.py').read_text() == want
    assert (repo / 'nbs' / 'ch.ipynb').read_text() == 'the new scale\nholds\n'  # the drafts applied too


def test_preview_finds_the_chapters_of_each_grid_and_never_removes_another_folder(tmp_path, monkeypatch):
    "preview: which chapters read which re-run grids at the scale; it removes only a folder it made itself."
    m = _tool(tmp_path, monkeypatch)
    nbs = tmp_path / 'nbs'
    nbs.mkdir()
    cell = lambda src: dict(cell_type='code', source=[src])
    for name, srcs in {'12_t1.ipynb': ["show_grid('table1', 'fashion-mnist', out=R)",
                                       "expect('table1', 'digits', {})"],
                       '15_t6.ipynb': ['x = 1', "expect(\n    'table6',  \"fashion-mnist\", {})",
                                       "grid_runs('table8', 'fashion-mnist')"],
                       '01_theory.ipynb': ["show_grid('table1', 'digits')"],
                       '99_other.ipynb': ["show_grid('unplanned', 'fashion-mnist')"],
                       '93_all.ipynb': ["for g in grids:", "    expect(g, 'fashion-mnist', {}, out=results_dir())"],
                       '06_data.ipynb': ["load_dataset('fashion-mnist')"]}.items():
        (nbs / name).write_text(json.dumps(dict(cells=[cell(s) for s in srcs])))
    grids = {'table1': [], 'table6': [], 'table8': []}
    assert m.chapters_reading(nbs, grids) == {'12_t1.ipynb': ['table1'], '15_t6.ipynb': ['table6', 'table8'],
                                              '93_all.ipynb': ['table1', 'table6', 'table8']}
    keep = tmp_path / 'work'
    (keep / 'x').mkdir(parents=True)
    with pytest.raises(SystemExit, match='is not a preview'):
        m.preview(SHA, PLAN, keep)
    assert (keep / 'x').exists()


def test_the_verdicts_chapters_assert_are_read_from_their_source_and_compared(tmp_path, monkeypatch):
    m = _tool(tmp_path, monkeypatch)
    cells = ["%matplotlib inline\nexpect('t1', 'fashion-mnist', {'a': 'holds', 'b': 'within noise'},"
             " out=RESULTS)",
             "expect('t1', 'digits', {'a': 'reversed'})",                  # another scale: not read
             "for scale in CPU_SCALES:\n    expect('t2', scale, {'c': 'holds'})",
             "expect('t3', 'fashion-mnist', WANT)"]                        # not written out: skipped
    nb = dict(cells=[dict(cell_type='code', source=s) for s in cells] +
              [dict(cell_type='markdown', source="expect('t1', 'fashion-mnist', {'a': 'x'})")])
    (tmp_path / 'ch.ipynb').write_text(json.dumps(nb))
    asserted = m.chapter_verdicts(tmp_path)
    assert asserted == [('ch.ipynb', 't1', {'a': 'holds', 'b': 'within noise'}),
                        ('ch.ipynb', 't2', {'c': 'holds'})]
    got = {'t1': {'a': 'holds', 'b': 'holds'}}                             # t2 not complete
    assert m.verdict_changes(asserted, got) == [
        "ch.ipynb: t1 b: the chapter says 'within noise', the runs give 'holds'"]


def test_the_preview_checks_the_books_form(tmp_path, monkeypatch):
    "form_check runs the clone's tests/test_book.py and names what fails (drafts must fit the page too)."
    m = _tool(tmp_path, monkeypatch)
    (tmp_path / 'tests').mkdir()
    book = tmp_path / 'tests' / 'test_book.py'
    book.write_text("def test_fits():\n    assert True\n")
    assert m.form_check(tmp_path).endswith('passes')
    book.write_text("def test_lines_fit_the_page():\n    assert not ['10b: x = 1 …'], 'lines over 100'\n")
    said = m.form_check(tmp_path)
    assert 'FAILS' in said and 'test_lines_fit_the_page' in said and 'lines over 100' in said
