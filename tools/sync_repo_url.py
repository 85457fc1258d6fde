"""settings.ini's git_url is the one place the repository URL lives. This rewrites the copies
that cannot read settings.ini at run time -- _config.yml (repository.url, html.baseurl) and the
Colab install cell of every notebook -- or, with --check, fails when any of them disagrees."""
import configparser, json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
cfg = configparser.ConfigParser(delimiters=['='])
cfg.read(root / 'settings.ini')
d = cfg['DEFAULT']
git_url, branch = d['git_url'].rstrip('/'), d['branch']
baseurl = d['doc_host'].rstrip('/') + d['doc_baseurl'].rstrip('/') + '/'
check = '--check' in sys.argv
COLAB_RE = re.compile(r'byoltheory(\[book\])? @ git\+[^"\'\s\\]+')
colab_pin = f'byoltheory[book] @ git+{git_url}'

def fix_config(text):
    text = re.sub(r'(?m)^(  url: ).*$', rf'\g<1>{git_url}', text, count=1)
    text = re.sub(r'(?m)^(  branch: ).*$', rf'\g<1>{branch}', text, count=1)
    return re.sub(r'(?m)^(  baseurl: ).*$', rf'\g<1>{baseurl}', text, count=1)

changed = []
p = root / '_config.yml'
old = p.read_text(); new = fix_config(old)
if new != old:
    changed.append(str(p.relative_to(root)))
    if not check: p.write_text(new)
for nb in sorted((root / 'nbs').glob('*.ipynb')):
    old = nb.read_text()
    new = COLAB_RE.sub(lambda m: colab_pin, old)
    if new != old:
        changed.append(str(nb.relative_to(root)))
        if not check: nb.write_text(new)
if check and changed:
    sys.exit(f"repository URL out of step with settings.ini git_url in: {', '.join(changed)} (run `make sync-url`)")
print('repository URL in step with settings.ini' if not changed else f"updated: {', '.join(changed)}")
