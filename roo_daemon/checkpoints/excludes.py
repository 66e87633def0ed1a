"""What a checkpoint leaves out: Roo-Code's list (src/services/checkpoints/
excludes.ts: build outputs, dependency folders, media, archives, databases,
logs, ``.env`` files and Git LFS patterns), the configured extras, and the
workspace's own ``.gitignore`` files (git reads those itself).

The list is written to the shadow repository's ``info/exclude``, which only
the shadow repository reads. ``info/attributes`` switches off every content
conversion the workspace's ``.gitattributes`` could ask for (end of line,
filters, ident, encodings): a checkpoint stores and restores bytes as they are.
"""

from __future__ import annotations

from pathlib import Path

BUILD_ARTIFACTS = (
    ".gradle/ .idea/ .parcel-cache/ .pytest_cache/ .next/ .nuxt/ .sass-cache/ .terraform/ .terragrunt-cache/ "
    ".vs/ .vscode/ Pods/ __pycache__/ bin/ build/ bundle/ coverage/ deps/ dist/ env/ node_modules/ obj/ out/ "
    "pkg/ pycache/ target/dependency/ temp/ vendor/ venv/"
)
MEDIA = (
    "*.jpg *.jpeg *.png *.gif *.bmp *.ico *.webp *.tiff *.tif *.raw *.heic *.avif *.eps *.psd *.3gp *.aac "
    "*.aiff *.asf *.avi *.divx *.flac *.m4a *.m4v *.mkv *.mov *.mp3 *.mp4 *.mpeg *.mpg *.ogg *.opus *.rm "
    "*.rmvb *.vob *.wav *.webm *.wma *.wmv"
)
CACHE = (
    "*.DS_Store *.bak *.cache *.crdownload *.dmp *.dump *.eslintcache *.lock *.log *.old *.part *.partial "
    "*.pyc *.pyo *.stackdump *.swo *.swp *.temp *.tmp *.Thumbs.db"
)
CONFIG = "*.env* *.local *.development *.production"
LARGE_DATA = "*.zip *.tar *.gz *.rar *.7z *.iso *.bin *.exe *.dll *.so *.dylib *.dat *.dmg *.msi"
DATABASES = (
    "*.arrow *.accdb *.aof *.avro *.bak *.bson *.csv *.db *.dbf *.dmp *.frm *.ibd *.mdb *.myd *.myi *.orc "
    "*.parquet *.pdb *.rdb *.sql *.sqlite"
)
GEOSPATIAL = (
    "*.shp *.shx *.dbf *.prj *.sbn *.sbx *.shp.xml *.cpg *.gdb *.mdb *.gpkg *.kml *.kmz *.gml *.geojson "
    "*.dem *.asc *.img *.ecw *.las *.laz *.mxd *.qgs *.grd *.csv *.dwg *.dxf"
)
LOGS = "*.error *.log *.logs *.npm-debug.log* *.out *.stdout yarn-debug.log* yarn-error.log*"

ATTRIBUTES = "* -text -filter -ident !eol !working-tree-encoding !crlf\n"


def roo_patterns() -> list[str]:
    """Roo's exclude patterns, in Roo's order (``.git/`` first)."""
    out = [".git/"]
    for group in (BUILD_ARTIFACTS, MEDIA, CACHE, CONFIG, LARGE_DATA, DATABASES, GEOSPATIAL, LOGS):
        out.extend(group.split())
    return out


def lfs_patterns(workspace: Path) -> list[str]:
    """Patterns the workspace's ``.gitattributes`` stores in Git LFS (as Roo:
    the first word of each ``filter=lfs`` line). Blocking: run in a thread."""
    try:
        text = (workspace / ".gitattributes").read_text(errors="replace")
    except OSError:
        return []
    return [line.split()[0] for line in text.splitlines() if "filter=lfs" in line and line.split()]


def anchored(relative: str) -> str:
    """An exclude line matching exactly one workspace path (the data dir,
    when it lies inside the workspace). Wildcards and specials are escaped."""
    escaped = "".join("\\" + c if c in "*?[]\\!# " else c for c in relative)
    return "/" + escaped + "/"


def exclude_file(workspace: Path, extra: list[str], inside: list[str]) -> str:
    """The shadow repository's ``info/exclude``: Roo's list, LFS patterns,
    ``checkpoints.exclude`` and the daemon's own directories that lie in the
    workspace (``inside``, relative paths). Blocking: run in a thread."""
    lines = [*roo_patterns(), *lfs_patterns(workspace), *extra, *(anchored(p) for p in inside)]
    return "\n".join(lines) + "\n"
