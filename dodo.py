"""doit tasks for the image stack builder: the ``stack_builder`` package's tasks, declared here for doit.

In a stack with a ``dodo.py`` of its own, use the ``stack-builder`` command instead (it takes the
same tasks and parameters); ``doit -f <this repo>/dodo.py -d <stack folder>`` works for stacks without one.
"""
from stack_builder.apps.cli import keep_secrets_home
from stack_builder.apps.doit_tasks import (DOIT_CONFIG, task_build, task_gc, task_init, task_manifest, task_merge,
                                           task_plan, task_precalc, task_sbom, task_serve, task_tag, task_test_gpu,
                                           task_tree, task_wiki, task_yank)

__all__ = ["DOIT_CONFIG", "task_build", "task_gc", "task_init", "task_manifest", "task_merge", "task_plan",
           "task_precalc", "task_sbom", "task_serve", "task_tag", "task_test_gpu", "task_tree", "task_wiki",
           "task_yank"]

keep_secrets_home()  # doit's command starts again without the secrets in its environment, as stack-builder does
