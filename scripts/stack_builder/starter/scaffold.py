"""The files of a new stack, as text: what ``stack-builder init`` writes, and nothing it decides by itself.

The root image builds FROM ``debian:bookworm-slim`` (the bundled stack's base) and adds one command that its one
test runs, so ``stack-builder build`` builds, tests and pushes it with no edit. With a model, a child image turns
an input CSV into an output CSV, with the examples and the reference output that the model check compares.
The workflow files are the caller templates shipped in this package (``starter/workflows``), pinned to this
builder's version.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from importlib import resources

VERSION_TOKEN = "STACK_BUILDER_VERSION"  # in the workflow templates: replaced by this builder's version
NAME_PATTERN = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")  # an image name that is also a repository path part
OWNER_PATTERN = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
EXECUTABLE = 0o755
REGULAR = 0o644


@dataclass(frozen=True)
class StarterOptions:
    """What the user chose: the root image's name, the registry owner of the images, whether to add a model."""

    name: str
    owner: str
    model: bool
    version: str  # this builder's version: the workflows call the reusable workflows at @v<version>
    today: date

    @property
    def model_name(self) -> str:
        return f"{self.name}-model"

    @property
    def tag_prefix(self) -> str:
        """The quarter the stack starts in, as the predecessor's tags say it: <year>.<quarter>."""
        return f"{self.today.year}.{(self.today.month - 1) // 3 + 1}"


@dataclass(frozen=True)
class StarterFile:
    text: str
    mode: int = REGULAR


def problems(options: StarterOptions) -> list[str]:
    """What is wrong with the options, each said with what to write instead ([] when nothing)."""
    found = []
    if not NAME_PATTERN.fullmatch(options.name):
        found.append(f"--name {options.name!r}: an image name is lower-case letters and digits, with single '.', "
                     "'_' or '-' between them (e.g. base-notebook)")
    if not OWNER_PATTERN.fullmatch(options.owner):
        found.append(f"--owner {options.owner!r}: a registry owner is lower-case letters and digits, with single "
                     "'.', '_' or '-' between them (e.g. example-university)")
    return found


def starter_files(options: StarterOptions) -> dict[str, StarterFile]:
    """Every file of the new stack, by its path relative to the stack folder."""
    files = {
        "spec.yml": StarterFile(_spec(options)),
        f"images/{options.name}/Dockerfile": StarterFile(_root_dockerfile(options)),
        f"images/{options.name}/test/test_{_python_name(options.name)}.py": StarterFile(_root_test(options)),
        ".gitignore": StarterFile("# What the builder writes: reports, logs, JUnit files, manifests\nartifacts/\n"
                                  ".doit.json*\n# The manifest pages of local builds (CI publishes them to the "
                                  "repository's wiki)\nwiki/\n"),
        "README.md": StarterFile(_readme(options)),
    }
    if options.model:
        files.update(_model_files(options))
    for name, text in workflow_templates().items():
        files[f".github/workflows/{name}"] = StarterFile(text.replace(VERSION_TOKEN, options.version))
    return files


def workflow_templates() -> dict[str, str]:
    """The caller workflows shipped with this builder, by file name (their version token not yet replaced)."""
    folder = resources.files(__package__).joinpath("workflows")
    if not folder.is_dir():
        return {}
    return {entry.name: entry.read_text(encoding="utf-8") for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".yml")}


def _python_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "_", name)


def _spec(options: StarterOptions) -> str:
    text = f"""\
# The stack: its images and who depends on whom. Each image's folder is images/<name>/.
# Reference: https://stack-builder.github.io/stack-builder/reference/spec/
version: 1

images:
  {options.name}:
    image_name: ghcr.io/{options.owner}/{options.name}
    info_cmds: [OS]
"""
    if options.model:
        text += f"""
  {options.model_name}:
    image_name: ghcr.io/{options.owner}/{options.model_name}
    depend_on: {options.name}
    info_cmds: [OS]
    model:
      columns:
        chars: integer
      fixed: true
"""
    return text + f"""
tag:
  prefix: "{options.tag_prefix}"  # builds are tagged <prefix>-<branch>, promoted to <prefix>-stable

all_info_cmds:
  OS:
    description: Operating system
    command: cat /etc/debian_version
"""


def _root_dockerfile(options: StarterOptions) -> str:
    return f"""\
# The root image of the stack. Add what every image needs: packages, users, tools.
FROM debian:bookworm-slim

RUN printf '#!/bin/sh\\necho "hello from {options.name}"\\n' > /usr/local/bin/hello \\
 && chmod 755 /usr/local/bin/hello
"""


def _root_test(options: StarterOptions) -> str:
    return f'''\
"""Tests of the {options.name} image: they run in a container of the image before it is pushed."""


def test_hello_names_the_image(container):
    # The entrypoint is named: this test also runs in every child image, whatever entrypoint that one has.
    code, output = container.run([], entrypoint=["hello"])
    assert code == 0, output
    assert output.strip() == "hello from {options.name}"
'''


def _model_files(options: StarterOptions) -> dict[str, StarterFile]:
    folder = f"images/{options.model_name}"
    return {
        f"{folder}/Dockerfile": StarterFile(f"""\
# A model image: its entrypoint turns an input CSV into an output CSV (`predict INPUT OUTPUT`).
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}

COPY predict /usr/local/bin/predict
ENTRYPOINT ["predict"]
"""),
        f"{folder}/predict": StarterFile("""\
#!/bin/sh
# predict INPUT.csv OUTPUT.csv: one output row per input row, in order. Replace it with your model.
set -eu
awk -F, 'NR == 1 { print "chars"; next } { print length($1) }' "$1" > "$2"
""", EXECUTABLE),
        f"{folder}/examples/input.csv": StarterFile("text\nhello\nstack builder\nmodel\n"),
        f"{folder}/examples/output.csv": StarterFile("chars\n5\n13\n5\n"),
        f"{folder}/test/test_predict.py": StarterFile('''\
"""The model turns its example input into its reference output."""
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_predicts_the_examples(container, tmp_path):
    work = tmp_path / "io"
    work.mkdir()
    (work / "input.csv").write_text((EXAMPLES / "input.csv").read_text())
    work.chmod(0o777)
    code, output = container.run(["/io/input.csv", "/io/output.csv"],
                                 volumes={str(work): {"bind": "/io", "mode": "rw"}})
    assert code == 0, output
    assert (work / "output.csv").read_text() == (EXAMPLES / "output.csv").read_text()
'''),
    }


def _readme(options: StarterOptions) -> str:
    model = f"\n- `images/{options.model_name}/`: a model image: `predict INPUT.csv OUTPUT.csv`, checked " \
            "against `examples/output.csv` before it is pushed." if options.model else ""
    return f"""\
# {options.name} stack

Docker images built, tested and published with [stack-builder](https://github.com/stack-builder/stack-builder)
{options.version}.

- `spec.yml`: the images and who depends on whom.
- `images/{options.name}/`: the root image; its tests in `test/` run in a container of it before it is pushed.{model}
- `.github/workflows/`: calls stack-builder's reusable workflows (build on every push, promote with `tag`).

On your machine, with Docker and a registry at `127.0.0.1:5000` (or `STACK_REGISTRY=host:port`):

```sh
pip install stack-builder=={options.version}
stack-builder tree     # the images, and what would be built
stack-builder build    # build what changed, test it, push it
```

Promote a tested build: `stack-builder tag --tag {options.tag_prefix}-main` moves it to `{options.tag_prefix}-stable`.
"""
