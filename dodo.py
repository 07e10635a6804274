"""doit tasks for the image stack builder. Each task calls into the ``stack_builder`` package.

Run from a stack folder, or point at one: ``doit -f <this repo>/dodo.py -d <stack folder> build``.
"""
from stack_builder.apps import tasks

DOIT_CONFIG = {
    "default_tasks": ["build"],
    "verbosity": 2,
    "backend": "json",
    "dep_file": ".doit.json",
}


def task_build():
    """Build, test, then push the changed images and their descendants, parents first."""
    return {"actions": [(tasks.build,)], "params": tasks.BUILD_PARAMS, "uptodate": [False], "verbosity": 2}


def task_tree():
    """Print the stack as a tree, marking what would be built and why."""
    return {"actions": [(tasks.tree,)], "params": tasks.SELECTION_PARAMS, "uptodate": [False], "verbosity": 2}


def task_manifest():
    """Write the manifest record and wiki page of an image already in the registry."""
    return {"actions": [(tasks.manifest,)], "params": tasks.MANIFEST_PARAMS, "uptodate": [False], "verbosity": 2}


def task_wiki():
    """Re-render the wiki's Home and Stable_Tag pages, fold old pages over the cap, check every link."""
    return {"actions": [(tasks.wiki,)], "uptodate": [False], "verbosity": 2}


def task_tag():
    """Promote a build registry-side (to YYYY.Q-stable, or the global stable) through the GPU and model gates."""
    return {"actions": [(tasks.tag,)], "params": tasks.TAG_PARAMS, "uptodate": [False], "verbosity": 2}


def task_test_gpu():
    """Run the GPU tests of the gpu: true images on the engine at DOCKER_HOST and record them per digest."""
    return {"actions": [(tasks.test_gpu,)], "params": tasks.GPU_PARAMS, "uptodate": [False], "verbosity": 2}


def task_plan():
    """Print the build plan as JSON for CI: levels in dependency order of {image, platform, runner}."""
    return {"actions": [(tasks.plan,)], "params": tasks.SELECTION_PARAMS, "uptodate": [False], "verbosity": 2}


def task_merge():
    """Assemble the multi-platform indexes registry-side once every platform of a level is pushed."""
    return {"actions": [(tasks.merge,)], "params": tasks.MERGE_PARAMS, "uptodate": [False], "verbosity": 2}
