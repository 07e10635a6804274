"""GitHub Actions expressions and job conditions, evaluated locally the way GitHub does.

Only the subset our workflows use is modelled; anything else raises ``ExpressionError``
rather than evaluating to something, so a workflow that starts using new syntax fails its
tests until the syntax is modelled here.

Modelled, from GitHub's documentation (docs.github.com, "Evaluate expressions in workflows and
actions", "Contexts", "Using conditions to control job execution"):

* literals: 'strings' (with '' for a quote), numbers, true, false, null;
* contexts: ``github``, ``inputs``, ``needs``, ``steps``, ``matrix``, ``secrets``, ``env``, ``vars``,
  ``runner``, ``job``, ``strategy``, with ``.name`` and ``['name']`` access; a missing property is
  null, a context the caller does not provide raises;
* operators ``!``, ``==``, ``!=``, ``&&``, ``||`` and parentheses; ``&&`` and ``||`` give one of their
  operands, as in GitHub; ``==`` compares strings ignoring case and other types after converting
  to numbers;
* functions ``contains``, ``startsWith``, ``endsWith``, ``fromJSON``, ``toJSON`` and the status
  functions ``success()``, ``failure()``, ``cancelled()``, ``always()``;
* a job's or step's ``if:`` with no status function means ``success() && (if)``; a job's
  ``success()`` is true only when every job it needs, directly or through other jobs, succeeded
  (a skipped ancestor makes it false: actions/runner#2205), ``failure()`` when one of them failed;
* reusable workflows ("Reuse workflows"): a job with ``uses:`` runs the called workflow's jobs, in the
  caller's ``github`` context, with ``inputs`` from its ``with:`` (rendered in the caller's context, each
  declared by the called workflow's ``on.workflow_call.inputs``, of its type, required ones given, defaults
  applied), ``secrets`` inherited or passed; the calling job fails when one of the called jobs failed, and
  its outputs are the called workflow's ``on.workflow_call.outputs`` (from the ``jobs`` context).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import yaml

CONTEXTS = {"github", "inputs", "needs", "steps", "matrix", "secrets", "env", "vars", "runner", "job",
            "strategy", "jobs"}
STATUS_FUNCTIONS = {"success", "failure", "cancelled", "always"}
FUNCTIONS = {"contains": 2, "startswith": 2, "endswith": 2, "fromjson": 1, "tojson": 1} | {
    name: 0 for name in STATUS_FUNCTIONS}


class ExpressionError(ValueError):
    """The expression is not valid, or uses syntax this model does not know."""


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?(?:0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?))
  | (?P<op>==|!=|&&|\|\||!|\(|\)|\[|\]|,|\.)
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    at: int


def tokenize(text: str) -> list[Token]:
    tokens, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if not match:
            raise ExpressionError(f"unknown syntax at {at} in {text!r}: {text[at:at + 10]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), at))
        at = match.end()
    return tokens


# The syntax tree: tuples, first item the kind.
Node = tuple[Any, ...]


class _Parser:
    """Precedence, loosest first: ||, &&, == !=, !, property access and calls."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, text: str | None = None) -> Token:
        token = self.peek()
        if token is None or (text is not None and token.text != text):
            found = token.text if token else "the end"
            raise ExpressionError(f"expected {text or 'more'} but found {found!r} in {self.text!r}")
        self.index += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "op" and token.text in texts

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("an empty expression")
        node = self.either()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek().text!r} in {self.text!r}")  # type: ignore[union-attr]
        return node

    def either(self) -> Node:
        node = self.both()
        while self.at("||"):
            self.take()
            node = ("or", node, self.both())
        return node

    def both(self) -> Node:
        node = self.comparison()
        while self.at("&&"):
            self.take()
            node = ("and", node, self.comparison())
        return node

    def comparison(self) -> Node:
        node = self.unary()
        while self.at("==", "!="):
            op = self.take().text
            node = ("eq" if op == "==" else "ne", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.at("!"):
            self.take()
            return ("not", self.unary())
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while self.at(".", "["):
            if self.take().text == ".":
                name = self.take()
                if name.kind != "name":
                    raise ExpressionError(f"expected a property name after '.', found {name.text!r} in {self.text!r}")
                node = ("get", node, ("literal", name.text))
            else:
                node = ("get", node, self.either())
                self.take("]")
        return node

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "string":
            return ("literal", token.text[1:-1].replace("''", "'"))
        if token.kind == "number":
            value = int(token.text, 16) if token.text.lower().lstrip("-").startswith("0x") else float(token.text)
            return ("literal", value)
        if token.text == "(" and token.kind == "op":
            node = self.either()
            self.take(")")
            return node
        if token.kind != "name":
            raise ExpressionError(f"unexpected {token.text!r} in {self.text!r}")
        if token.text in ("true", "false"):
            return ("literal", token.text == "true")
        if token.text == "null":
            return ("literal", None)
        if self.at("("):
            name = token.text.lower()  # function names are case-insensitive
            if name not in FUNCTIONS:
                raise ExpressionError(f"unknown function {token.text}() in {self.text!r}")
            self.take("(")
            args: list[Node] = []
            while not self.at(")"):
                if args:
                    self.take(",")
                args.append(self.either())
            self.take(")")
            if len(args) != FUNCTIONS[name]:
                raise ExpressionError(f"{token.text}() takes {FUNCTIONS[name]} arguments, not {len(args)}")
            return ("call", name, *args)
        if token.text not in CONTEXTS:
            raise ExpressionError(f"unknown context {token.text!r} in {self.text!r}")
        return ("context", token.text)


def parse(text: str) -> Node:
    return _Parser(strip(text)).parse()


def strip(text: str) -> str:
    """The expression inside ``${{ }}``; ``if:`` may leave the braces out."""
    text = text.strip()
    if text.startswith("${{"):
        if not text.endswith("}}") or "${{" in text[3:]:
            raise ExpressionError(f"{text!r} is not one expression (a condition must be all one ${{{{ }}}})")
        return text[3:-2].strip()
    return text


def walk(node: Node) -> Iterator[Node]:
    yield node
    for part in node[1:]:
        if isinstance(part, tuple):
            yield from walk(part)


def uses_status_function(node: Node) -> bool:
    return any(n[0] == "call" and n[1] in STATUS_FUNCTIONS for n in walk(node))


def references(node: Node) -> set[str]:
    """The dotted context paths an expression reads, e.g. ``needs.plan.outputs.level0``."""
    found = set()
    for sub in walk(node):
        path = _dotted(sub)
        if path and sub[0] == "get":
            found.add(path)
    # Keep only the longest paths: needs.plan.outputs.level0, not needs.plan too.
    return {p for p in found if not any(o.startswith(p + ".") for o in found)}


def _dotted(node: Node) -> str | None:
    if node[0] == "context":
        return str(node[1])
    if node[0] == "get" and node[2][0] == "literal" and isinstance(node[2][1], str):
        inner = _dotted(node[1])
        return f"{inner}.{node[2][1]}" if inner else None
    return None


# --- Values -------------------------------------------------------------------------------------------


def truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "") or isinstance(value, (dict, list))


def to_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def to_string(value: Any) -> str:
    """How a value is written into a string (``env:``, ``with:``, ``format``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


def equal(left: Any, right: Any) -> bool:
    if isinstance(left, (dict, list)) or isinstance(right, (dict, list)):
        return left is right
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right) and not isinstance(left, (int, float)):
        return bool(left == right)
    a, b = to_number(left), to_number(right)
    return not (math.isnan(a) or math.isnan(b)) and a == b


def _search_string(value: Any, function: str) -> str:
    if isinstance(value, (dict, list)):
        raise ExpressionError(f"{function}() cannot search an object or array as a string")
    return to_string(value).casefold()


@dataclass
class Status:
    """What the status functions say for the job or step being evaluated."""

    success: bool = True
    failure: bool = False
    cancelled: bool = False


class Evaluator:
    def __init__(self, contexts: Mapping[str, Any], status: Status | None = None) -> None:
        self.contexts = contexts
        self.status = status

    def evaluate(self, node: Node) -> Any:
        kind = node[0]
        if kind == "literal":
            return node[1]
        if kind == "context":
            if node[1] not in self.contexts:
                raise ExpressionError(f"the {node[1]} context is not available here")
            return self.contexts[node[1]]
        if kind == "get":
            target, key = self.evaluate(node[1]), self.evaluate(node[2])
            if isinstance(target, dict):
                if not isinstance(key, str):
                    return None
                # Property names are case-insensitive.
                for name, value in target.items():
                    if name.casefold() == key.casefold():
                        return value
                return None
            if isinstance(target, list) and isinstance(key, (int, float)) and not isinstance(key, bool):
                index = int(key)
                return target[index] if 0 <= index < len(target) else None
            return None
        if kind == "not":
            return not truthy(self.evaluate(node[1]))
        if kind == "and":
            left = self.evaluate(node[1])
            return self.evaluate(node[2]) if truthy(left) else left
        if kind == "or":
            left = self.evaluate(node[1])
            return left if truthy(left) else self.evaluate(node[2])
        if kind in ("eq", "ne"):
            same = equal(self.evaluate(node[1]), self.evaluate(node[2]))
            return same if kind == "eq" else not same
        if kind == "call":
            return self.call(node[1], [self.evaluate(arg) for arg in node[2:]])
        raise ExpressionError(f"unknown node {kind}")

    def call(self, name: str, args: list[Any]) -> Any:
        if name in STATUS_FUNCTIONS:
            if self.status is None:
                raise ExpressionError(f"{name}() is only allowed in if: conditions")
            return {"success": self.status.success and not self.status.cancelled,
                    "failure": self.status.failure, "cancelled": self.status.cancelled, "always": True}[name]
        if name == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(equal(item, needle) for item in haystack)
            return _search_string(needle, name) in _search_string(haystack, name)
        if name == "startswith":
            return _search_string(args[0], name).startswith(_search_string(args[1], name))
        if name == "endswith":
            return _search_string(args[0], name).endswith(_search_string(args[1], name))
        if name == "fromjson":
            if not isinstance(args[0], str):
                raise ExpressionError(f"fromJSON() needs a string, not {args[0]!r}")
            try:
                return json.loads(args[0])
            except ValueError as exc:
                raise ExpressionError(f"fromJSON({args[0]!r}): {exc}") from None
        if name == "tojson":
            return json.dumps(args[0], indent=2)
        raise ExpressionError(f"unknown function {name}()")


def evaluate(text: str, contexts: Mapping[str, Any], status: Status | None = None) -> Any:
    return Evaluator(contexts, status).evaluate(parse(text))


def condition(text: Any, contexts: Mapping[str, Any], status: Status) -> bool:
    """A job's or step's ``if:``: missing means success(); without a status function, success() && (it)."""
    if text is None:
        return status.success and not status.cancelled
    if isinstance(text, bool):
        text = "true" if text else "false"
    node = parse(str(text))
    if not uses_status_function(node):
        node = ("and", ("call", "success"), node)
    return truthy(Evaluator(contexts, status).evaluate(node))


_EMBEDDED = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def render(value: Any, contexts: Mapping[str, Any]) -> Any:
    """A ``with:``/``env:``/``outputs:`` value: a single ``${{ }}`` keeps its type, embedded ones become text."""
    if not isinstance(value, str):
        return value
    whole = _EMBEDDED.fullmatch(value.strip())
    if whole:
        return evaluate(whole.group(1), contexts)
    return _EMBEDDED.sub(lambda m: to_string(evaluate(m.group(1), contexts)), value)


# --- Jobs ------------------------------------------------------------------------------------------------


def needs_of(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def order_jobs(jobs: Mapping[str, Any]) -> list[str]:
    """Job names, each after all the jobs it needs (file order otherwise).

    Raises ``ValueError`` naming the jobs when a job needs one the workflow does not have, or
    when jobs need each other in a cycle: GitHub rejects such a workflow, and no order exists.
    """
    for name, job in jobs.items():
        missing = [n for n in needs_of(job) if n not in jobs]
        if missing:
            raise ValueError(f"job '{name}' needs {', '.join(repr(m) for m in missing)}, which "
                             f"{'is not a job' if len(missing) == 1 else 'are not jobs'} of this workflow "
                             f"(jobs: {', '.join(jobs)})")
    done: list[str] = []
    while len(done) < len(jobs):
        ready = next((n for n, job in jobs.items() if n not in done and all(d in done for d in needs_of(job))), None)
        if ready is None:
            raise ValueError("jobs need each other in a cycle: " + _cycle(jobs, [n for n in jobs if n not in done]))
        done.append(ready)
    return done


def _cycle(jobs: Mapping[str, Any], waiting: list[str]) -> str:
    path = [waiting[0]]
    while True:
        following = next(n for n in needs_of(jobs[path[-1]]) if n in waiting)
        if following in path:
            loop = path[path.index(following):] + [following]
            return " -> ".join(loop)
        path.append(following)


def ancestors(jobs: Mapping[str, Any], name: str) -> list[str]:
    seen: list[str] = []
    stack = list(needs_of(jobs[name]))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.append(current)
            stack.extend(needs_of(jobs[current]))
    return seen


def job_status(jobs: Mapping[str, Any], name: str, results: Mapping[str, str], *, cancelled: bool = False) -> Status:
    above = [results[a] for a in ancestors(jobs, name)]
    return Status(success=all(r == "success" for r in above), failure=any(r == "failure" for r in above),
                  cancelled=cancelled)


def needs_context(jobs: Mapping[str, Any], name: str, results: Mapping[str, str],
                  outputs: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """``needs`` holds the jobs this one needs directly, and only those."""
    return {n: {"result": results[n], "outputs": dict(outputs.get(n, {}))} for n in needs_of(jobs[name])}


@dataclass(frozen=True)
class Job:
    """A job of a run: its definition, and the workflow it is a job of (``locate`` finds it by its name)."""

    definition: Mapping[str, Any]
    workflow: Mapping[str, Any]


@dataclass
class Run:
    """One simulated run of a workflow: each job's result and outputs; ``calls`` the runs of the workflows that
    its jobs with ``uses:`` called, by job name."""

    results: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    calls: dict[str, "Run"] = field(default_factory=dict)

    def ran(self) -> list[str]:
        return [n for n, r in self.results.items() if r != "skipped"]

    def flat(self) -> dict[str, str]:
        """Every job's result, those of called workflows too, by qualified name ("build", "build/plan")."""
        found: dict[str, str] = {}
        for name, result in self.results.items():
            found[name] = result
            if name in self.calls:
                found.update({f"{name}/{inner}": r for inner, r in self.calls[name].flat().items()})
        return found


# A job's name, with the calling jobs before it ("build/plan": the plan job of the workflow the job "build" calls).
Runner = Callable[[str, Mapping[str, Any]], tuple[str, Mapping[str, str]]]
Resolver = Callable[[str], Mapping[str, Any]]


def locate(workflow: Mapping[str, Any], name: str, resolve: Resolver) -> Job:
    """The job ``name`` ("build/plan") as ``simulate`` names it: through the workflows its callers call."""
    *callers, last = name.split("/")
    for caller in callers:
        workflow = resolve(str(workflow["jobs"][caller]["uses"]))
    return Job(workflow["jobs"][last], workflow)


class CallError(ValueError):
    """A call of a reusable workflow that GitHub would refuse: an unknown or missing input, or a wrong type."""


def read_workflow(path: Path) -> dict[str, Any]:
    """A workflow file, with its ``on`` key as written (YAML 1.1 reads the key ``on`` as true)."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise CallError(f"{path}: not a workflow")
    if True in data:
        data["on"] = data.pop(True)
    return data


def resolver(folder: Path, repositories: tuple[str, ...] = ()) -> Resolver:
    """Reads a job's ``uses:`` from ``folder`` (a repository's .github/workflows): ``./.github/workflows/NAME``,
    or ``OWNER/REPO/.github/workflows/NAME@REF`` for OWNER/REPO in ``repositories`` (this repository's homes)."""
    local = re.compile(r"\./\.github/workflows/(?P<name>[A-Za-z0-9_.-]+\.ya?ml)")
    remote = re.compile(r"(?P<repository>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)/\.github/workflows/"
                        r"(?P<name>[A-Za-z0-9_.-]+\.ya?ml)@[A-Za-z0-9_./-]+")

    def resolve(uses: str) -> Mapping[str, Any]:
        found = local.fullmatch(uses) or remote.fullmatch(uses)
        if found is None or ("repository" in found.groupdict() and found["repository"] not in repositories):
            raise CallError(f"uses: {uses} is not a workflow of this repository")
        path = folder / found["name"]
        if not path.is_file():
            raise CallError(f"uses: {uses}: {path} does not exist")
        return read_workflow(path)

    return resolve


INPUT_TYPES: dict[str, tuple[type, ...]] = {"boolean": (bool,), "number": (int, float), "string": (str,)}
ZERO: dict[str, Any] = {"boolean": False, "number": 0, "string": ""}


def call_inputs(callee: Mapping[str, Any], given: Mapping[str, Any] | None, contexts: Mapping[str, Any],
                where: str = "") -> dict[str, Any]:
    """The ``inputs`` context of a called workflow: ``given`` (a job's ``with:``) rendered in the caller's
    ``contexts``, checked against the called workflow's declared inputs, defaults applied."""
    triggers = callee.get("on")
    call = triggers.get("workflow_call") if isinstance(triggers, Mapping) else None
    if not isinstance(triggers, Mapping) or "workflow_call" not in triggers:
        raise CallError(f"{where}: the called workflow has no workflow_call trigger")
    declared = dict((call or {}).get("inputs") or {})
    unknown = sorted(set(given or {}) - set(declared))
    if unknown:
        raise CallError(f"{where}: with: {', '.join(unknown)}, not inputs of the called workflow "
                        f"(it has: {', '.join(declared) or 'none'})")
    inputs: dict[str, Any] = {}
    for name, spec in declared.items():
        spec = spec or {}
        kind = spec.get("type")
        if kind not in INPUT_TYPES:
            raise CallError(f"{where}: input {name} has no type GitHub knows ({kind!r}): boolean, number or string")
        if given is not None and name in given:
            value = render(given[name], contexts)
        elif spec.get("required"):
            raise CallError(f"{where}: the required input {name} is not given")
        else:
            value = spec.get("default", ZERO[kind])
        if not isinstance(value, INPUT_TYPES[kind]) or (kind == "number" and isinstance(value, bool)):
            raise CallError(f"{where}: input {name} is a {kind}, but gets {value!r}")
        inputs[name] = value
    return inputs


def call_secrets(job: Mapping[str, Any], contexts: Mapping[str, Any]) -> dict[str, Any]:
    """The ``secrets`` of a called workflow: the caller's (``secrets: inherit``) or those passed, and the token."""
    passed = job.get("secrets")
    mine = dict(contexts.get("secrets") or {})
    token = {k: v for k, v in mine.items() if k == "GITHUB_TOKEN"}
    if passed == "inherit":
        return mine
    return {**token, **{k: render(v, contexts) for k, v in (passed or {}).items()}}


def simulate(workflow: Mapping[str, Any], contexts: Mapping[str, Any], job: Runner, *, cancelled: bool = False,
             resolve: Resolver | None = None, prefix: str = "") -> Run:
    """Run the job graph: each job whose ``if:`` holds is handed to ``job(name, contexts)``, which returns
    (result, outputs); a job whose ``if:`` does not hold is skipped. A job with ``uses:`` runs the workflow
    ``resolve(uses)`` gives, its jobs handed to ``job`` too, named after the calling job ("build/plan"); without
    ``resolve``, such a job is handed to ``job`` itself, as one job."""
    jobs = workflow["jobs"]
    run = Run()
    for name in order_jobs(jobs):
        here = {**contexts, "needs": needs_context(jobs, name, run.results, run.outputs)}
        definition = jobs[name]
        outputs: Mapping[str, str]
        if not condition(definition.get("if"), here, job_status(jobs, name, run.results, cancelled=cancelled)):
            result, outputs = "skipped", {}
        elif "uses" in definition and resolve is not None:
            result, outputs, run.calls[name] = _call(definition, here, job, cancelled, resolve, f"{prefix}{name}")
        else:
            result, outputs = job(f"{prefix}{name}", here)
        run.results[name] = result
        run.outputs[name] = dict(outputs)
    return run


def _call(definition: Mapping[str, Any], here: Mapping[str, Any], job: Runner, cancelled: bool,
          resolve: Resolver, name: str) -> tuple[str, dict[str, str], Run]:
    callee = resolve(str(definition["uses"]))
    inputs = call_inputs(callee, definition.get("with"), here, where=f"{name} (uses: {definition['uses']})")
    # A called workflow's github context is the caller's; it has no needs, steps or matrix of the caller's.
    inner = {"github": here["github"], "inputs": inputs, "secrets": call_secrets(definition, here),
             **({"vars": here["vars"]} if "vars" in here else {})}
    called = simulate(callee, inner, job, cancelled=cancelled, resolve=resolve, prefix=f"{name}/")
    result = "failure" if "failure" in called.results.values() else "success"
    declared = (callee["on"].get("workflow_call") or {}).get("outputs") or {}
    jobs = {n: {"result": r, "outputs": called.outputs.get(n, {})} for n, r in called.results.items()}
    outputs = {k: to_string(render((spec or {}).get("value"), {**inner, "jobs": jobs})) for k, spec in declared.items()}
    return result, outputs, called
