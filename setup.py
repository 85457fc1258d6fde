"""Packaging for byoltheory: every field is read from settings.ini (the nbdev 2 convention)."""
from configparser import ConfigParser
import setuptools, shlex
from setuptools.command.build_py import build_py as _build_py
from pathlib import Path

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
py_versions = '3.9 3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
book_requirements = shlex.split(cfg.get('book_requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))



def book_files():
    "The committed results (results/) and the chapter notebooks (nbs/): what chapters read."
    return sorted(f for f in [*Path('results').rglob('*.json'), *Path('nbs').glob('*.ipynb')]
                  if '.work' not in f.parts)


class build_py(_build_py):
    """Also copy the book's files into the package, as byoltheory/_book/{results,nbs}/: a chapter
    run outside a clone (Colab) finds them with importlib.resources wherever pip installs the
    package (a venv, or a Debian-layout /usr/local), with no guess at the prefix."""
    def run(self):
        super().run()
        for f in book_files():
            dest = Path(self.build_lib) / cfg['lib_path'] / '_book' / f
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(f), str(dest))

lic = licenses[cfg['license']]
min_python = cfg['min_python']
entry_points = {'console_scripts': cfg.get('console_scripts', '').split(),
                'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]}

setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'License :: ' + lic[1],
                 'Natural Language :: ' + cfg['language'].title()]
                + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'book': book_requirements, 'dev': book_requirements + dev_requirements},
    cmdclass={'build_py': build_py},
    package_data={cfg['lib_path']: ['ledger_index.json']},
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points=entry_points,
    version=cfg['version'],
    description=cfg['description'],
    keywords=cfg['keywords'],
    author=cfg['author'],
    author_email=cfg['author_email'],
)
