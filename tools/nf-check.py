#!/usr/bin/env python3
"""Checks the Nextflow side of pipelines/ without Nextflow.

For each module under modules/local/mambadna/<tool>/ it checks:
  - the files: main.nf, meta.yml, environment.yml, tests/main.nf.test;
  - main.nf's nf-core shape: one UPPER_SNAKE process MAMBADNA_<TOOL>,
    tag "$meta.id", a label, conda/container directives, inputs starting
    with tuple val(meta), path(...), named emit: on every output (versions
    included), when:, task.ext.args, task.ext.prefix, -t $task.cpus, a
    versions.yml from `mambadna --version`, and a stub: block;
  - that meta.yml agrees with main.nf: the same input channels and element
    names, the same emit names in the same order, the same path patterns;
  - the nf-test file names the process and has a stub test;
then runs the script: block and the stub: block through bash the way
Nextflow would: inputs staged as symlinks in a fresh work folder, the
Groovy preamble (def x = ..., ?:, ?., a ? b : c) evaluated with meta.id,
task.cpus, task.process, task.ext.args (from conf/test.config) and
task.ext.prefix bound, the GString rendered and stripIndent-ed, and run
with bash -euo pipefail. Every declared output must then match a file that
is not a staged input, and versions.yml must parse and hold the version
that `mambadna --version` prints. The stub runs twice, the second time with
task.ext.prefix set, and its outputs must follow the prefix. Inputs are
tiny data made by `mambadna simulate`, and each module consumes the outputs
of the one before it, as in main.nf.

Finally main.nf's includes and nextflow.config's profiles are checked.

Exit 0 when all is well, 1 on any failure, 77 when all checks that could
run passed but a module could not run for real because its mambadna
subcommand does not exist yet.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

MODULES = ["pretrain", "finetune", "classify"]
failures = []
skips = []


def fail(where, msg):
    failures.append(f"{where}: {msg}")
    print(f"FAIL {where}: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- Groovy subset

class GroovyError(Exception):
    pass


class Path(str):
    """A staged file: renders as its name, as Nextflow does."""


def truth(v):
    return v is not None and v is not False and v != "" and v != [] and v != 0


def render(v):
    if v is None:
        return "null"
    if isinstance(v, list):
        return " ".join(render(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def lookup(env, dotted):
    """a.b?.c: a missing key or a null before ?. gives null."""
    parts = re.split(r"(\?\.|\.)", dotted)
    v = env.get(parts[0], KeyError)
    if v is KeyError:
        raise GroovyError(f"unknown variable '{parts[0]}'")
    for i in range(1, len(parts), 2):
        op, name = parts[i], parts[i + 1]
        if v is None:
            if op == "?.":
                return None
            raise GroovyError(f"'{dotted}': null before .{name}")
        if not isinstance(v, dict):
            raise GroovyError(f"'{dotted}': cannot take .{name}")
        v = v.get(name)
    return v


def gstring(body, env):
    """Renders the body of a double-quoted Groovy string."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1:i + 2]
            esc = {"$": "$", "\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}
            if nxt not in esc:
                raise GroovyError(f"unknown escape '\\{nxt}'")
            out.append(esc[nxt])
            i += 2
        elif c == "$" and body[i + 1:i + 2] == "{":
            depth, j = 1, i + 2
            while depth:
                if j >= len(body):
                    raise GroovyError("unclosed ${")
                depth += {"{": 1, "}": -1}.get(body[j], 0)
                j += 1
            out.append(render(evaluate(body[i + 2:j - 1], env)))
            i = j
        elif c == "$":
            m = re.match(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*", body[i + 1:])
            if not m:
                raise GroovyError(f"bare '$' in a GString (write \\$ for the shell): ...{body[i:i + 20]}")
            out.append(render(lookup(env, m.group(0))))
            i += 1 + m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<op>\?:|\?|:|\(|\))|"""
                   r"""(?P<name>[A-Za-z_]\w*(?:(?:\?\.|\.)[A-Za-z_]\w*)*))""")


def evaluate(src, env):
    toks, pos = [], 0
    src = src.strip()
    while pos < len(src):
        m = TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise GroovyError(f"cannot read expression '{src}' at '{src[pos:]}'")
        toks.append(m)
        pos = m.end()
        while pos < len(src) and src[pos].isspace():
            pos += 1
    k = [0]

    def peek():
        return toks[k[0]] if k[0] < len(toks) else None

    def primary():
        t = peek()
        if t is None:
            raise GroovyError(f"expression '{src}' ends early")
        k[0] += 1
        if t.group("str"):
            s = t.group("str")
            return gstring(s[1:-1], env) if s[0] == '"' else s[1:-1].replace("\\'", "'")
        if t.group("name"):
            name = t.group("name")
            return {"null": None, "true": True, "false": False}.get(name, None) if name in (
                "null", "true", "false") else lookup(env, name)
        if t.group("op") == "(":
            v = ternary()
            if peek() is None or peek().group("op") != ")":
                raise GroovyError(f"')' missing in '{src}'")
            k[0] += 1
            return v
        raise GroovyError(f"unexpected '{t.group(0).strip()}' in '{src}'")

    def elvis():
        v = primary()
        while peek() is not None and peek().group("op") == "?:":
            k[0] += 1
            w = primary()
            v = v if truth(v) else w
        return v

    def ternary():
        c = elvis()
        if peek() is not None and peek().group("op") == "?":
            k[0] += 1
            a = ternary()
            if peek() is None or peek().group("op") != ":":
                raise GroovyError(f"':' missing in '{src}'")
            k[0] += 1
            b = ternary()
            return a if truth(c) else b
        return c

    v = ternary()
    if peek() is not None:
        raise GroovyError(f"trailing '{src[peek().start():]}' in '{src}'")
    return v


def strip_indent(text):
    lines = text.split("\n")
    if lines and not lines[0].strip():
        lines = lines[1:]
    indents = [len(l) - len(l.lstrip()) for l in lines if l.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(l[cut:] for l in lines)


def run_block(block, env):
    """Evaluates a script:/stub: block: its statements, then its GString.
    Returns (script text, variables assigned without def)."""
    m = re.search(r'"""(.*?)"""', block, re.S)
    if not m:
        raise GroovyError('no """ script string')
    script_vars = {}
    for line in block[:m.start()].split("\n"):
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        a = re.fullmatch(r"(def\s+)?([A-Za-z_]\w*)\s*=\s*(.+)", line)
        if not a:
            raise GroovyError(f"statement the checker does not understand: '{line}'")
        env[a.group(2)] = evaluate(a.group(3), env)
        if not a.group(1):
            script_vars[a.group(2)] = env[a.group(2)]
    return strip_indent(gstring(m.group(1), env)), script_vars


# ---------------------------------------------------------------- main.nf

def section(body, name, following):
    """Text of a process section (input:, output:, ...) up to the next one."""
    m = re.search(rf"^\s*{name}:\s*$", body, re.M)
    if not m:
        return None
    end = len(body)
    for other in following:
        n = re.search(rf"^\s*{other}:\s*$", body[m.end():], re.M)
        if n:
            end = min(end, m.end() + n.start())
    return body[m.end():end]


SECTIONS = ["input", "output", "when", "script", "stub"]


def parse_elements(decl):
    """val(x) / path(x) / path("glob") elements of one declaration."""
    elems = []
    for kind, arg in re.findall(r"\b(val|path)\s*\(?\s*(\"[^\"]*\"|'[^']*'|\w+)", decl):
        elems.append((kind, arg))
    return elems


def parse_module(path, where):
    text = open(path).read()
    procs = list(re.finditer(r"^process\s+(\w+)\s*\{", text, re.M))
    if len(procs) != 1:
        fail(where, f"{len(procs)} process definitions, want 1")
        return None
    name = procs[0].group(1)
    body = text[procs[0].end():text.rstrip().rindex("}")]
    mod = {"name": name}
    if not re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", name):
        fail(where, f"process name '{name}' is not UPPER_SNAKE")
    if not re.search(r'^\s*tag\s+"\$meta\.id"\s*$', body, re.M):
        fail(where, 'no tag "$meta.id"')
    if not re.search(r"^\s*label\s+'process_\w+'", body, re.M):
        fail(where, "no label 'process_...'")
    if not re.search(r'^\s*conda\s+"\$\{moduleDir\}/environment.yml"', body, re.M):
        fail(where, 'no conda "${moduleDir}/environment.yml"')
    if not re.search(r'^\s*container\s+"mambadna:', body, re.M):
        fail(where, "no container directive naming the mambadna image")
    positions = [re.search(rf"^\s*{s}:\s*$", body, re.M) for s in SECTIONS]
    for s, p in zip(SECTIONS, positions):
        if not p:
            fail(where, f"no {s}: section")
    if all(positions) and [p.start() for p in positions] != sorted(p.start() for p in positions):
        fail(where, "sections not in the order input, output, when, script, stub")
    if not all(positions):
        return None
    secs = {s: section(body, s, [o for o in SECTIONS if o != s]) for s in SECTIONS}
    # inputs: one channel per line
    mod["inputs"] = []
    for line in secs["input"].strip().split("\n"):
        line = line.split("//")[0].strip()
        if line:
            mod["inputs"].append(parse_elements(line))
    if not mod["inputs"] or mod["inputs"][0][:1] != [("val", "meta")] or \
            not any(k == "path" for k, _ in mod["inputs"][0]):
        fail(where, "the first input is not tuple val(meta), path(...)")
    # outputs: elements and emit name per line
    mod["outputs"] = []
    for line in secs["output"].strip().split("\n"):
        line = line.split("//")[0].strip()
        if not line:
            continue
        emit = re.search(r"emit:\s*(\w+)", line)
        if not emit:
            fail(where, f"output without emit: '{line}'")
            continue
        elems = [(k, a.strip("\"'")) for k, a in parse_elements(line[:emit.start()])]
        mod["outputs"].append({"emit": emit.group(1), "elements": elems, "optional": "optional: true" in line})
    emits = [o["emit"] for o in mod["outputs"]]
    if len(set(emits)) != len(emits):
        fail(where, f"emit names repeat: {emits}")
    if "versions" not in emits:
        fail(where, "no versions emit")
    if "task.ext.when == null || task.ext.when" not in secs["when"]:
        fail(where, "when: is not task.ext.when == null || task.ext.when")
    mod["script"], mod["stub"] = secs["script"], secs["stub"]
    for what in ("script", "stub"):
        if "task.ext.prefix" not in mod[what]:
            fail(where, f"{what}: does not use task.ext.prefix")
        if "versions.yml" not in mod[what] or "mambadna --version" not in mod[what]:
            fail(where, f"{what}: does not write versions.yml from `mambadna --version`")
    if "task.ext.args" not in mod["script"]:
        fail(where, "script: does not use task.ext.args")
    if not re.search(r"-t \$task\.cpus\b", mod["script"]):
        fail(where, "script: does not pass -t $task.cpus")
    return mod


def check_meta(mod, meta_path, where):
    try:
        meta = yaml.safe_load(open(meta_path))
    except (OSError, yaml.YAMLError) as e:
        fail(where, f"meta.yml: {e}")
        return
    if meta.get("name") != mod["name"].lower():
        fail(where, f"meta.yml name '{meta.get('name')}' is not '{mod['name'].lower()}'")
    for key in ("description", "keywords", "tools", "input", "output", "authors"):
        if not meta.get(key):
            fail(where, f"meta.yml has no {key}")
    nf_in = [[a for _, a in ch] for ch in mod["inputs"]]
    yml_in = [[next(iter(e)) for e in ch] for ch in meta.get("input") or []]
    if nf_in != yml_in:
        fail(where, f"inputs differ: main.nf {nf_in}, meta.yml {yml_in}")
    out = meta.get("output") or {}
    if list(out) != [o["emit"] for o in mod["outputs"]]:
        fail(where, f"emit names differ: main.nf {[o['emit'] for o in mod['outputs']]}, meta.yml {list(out)}")
    for o in mod["outputs"]:
        chans = out.get(o["emit"])
        if chans is None:
            continue
        # a tuple is a list of elements in a list; a lone path is one element
        elems = chans[0] if chans and isinstance(chans[0], list) else chans
        names = [next(iter(e)) for e in elems]
        want = [a for _, a in o["elements"]]
        if names != want:
            fail(where, f"output '{o['emit']}' elements differ: main.nf {want}, meta.yml {names}")


# ---------------------------------------------------------------- running

def stage(work, inputs_spec, values):
    """Symlinks the input files into work as Nextflow does; returns the env."""
    env, staged = {}, set()
    for ch_spec, ch_vals in zip(inputs_spec, values):
        for (kind, name), v in zip(ch_spec, ch_vals):
            if kind == "val":
                env[name] = v
                continue
            files = v if isinstance(v, list) else [v]
            names = []
            for f in files:
                dst = os.path.join(work, os.path.basename(f))
                os.symlink(os.path.abspath(f), dst)
                names.append(Path(os.path.basename(f)))
                staged.add(os.path.basename(f))
            env[name] = names if isinstance(v, list) else names[0]
    return env, staged


def run_module(mod, tool, what, values, ext, where, md_dir, version, scratch):
    work = tempfile.mkdtemp(prefix=f"{tool}-{what}-", dir=scratch)
    env, staged = stage(work, mod["inputs"], values)
    env["task"] = {"cpus": 2, "process": mod["name"], "accelerator": None, "ext": dict(ext)}
    env["moduleDir"] = os.path.dirname(where)
    try:
        script, script_vars = run_block(mod[what], env)
    except GroovyError as e:
        fail(where, f"{what}: {e}")
        return None
    if what == "script":
        if ext.get("args") and ext["args"] not in script:
            fail(where, f"{what}: task.ext.args '{ext['args']}' not in the command")
        if not re.search(r"(^|\s)-t 2(\s|$)", script, re.M):
            fail(where, f"{what}: task.cpus 2 does not reach -t")
    with open(os.path.join(work, ".command.sh"), "w") as f:
        f.write("#!/bin/bash -euo pipefail\n" + script)
    envp = dict(os.environ, PATH=md_dir + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["bash", "-euo", "pipefail", ".command.sh"], cwd=work, env=envp,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    if r.returncode != 0:
        fail(where, f"{what}: exit {r.returncode}: {r.stderr.strip().splitlines()[-3:]}")
        return None
    # Nextflow evaluates the outputs with the inputs, task and the block's
    # variables set without def (def ones are local to the block)
    input_names = {a for ch in mod["inputs"] for _, a in ch}
    out_env = {k: v for k, v in env.items() if k in input_names}
    out_env["task"] = env["task"]
    out_env.update(script_vars)
    produced = {}
    for o in mod["outputs"]:
        for kind, pat in o["elements"]:
            if kind != "path":
                continue
            try:
                pattern = gstring(pat, out_env)
            except GroovyError as e:
                fail(where, f"output '{o['emit']}' pattern {pat}: {e} (set it without def in {what}:)")
                continue
            hits = [h for h in glob.glob(os.path.join(work, pattern)) if os.path.basename(h) not in staged]
            if not hits and not o["optional"]:
                fail(where, f"{what}: output '{o['emit']}' ({pattern}) matched no file")
            produced[o["emit"]] = hits
    vpath = os.path.join(work, "versions.yml")
    if os.path.exists(vpath):
        try:
            v = yaml.safe_load(open(vpath))
            got = v[mod["name"]]["mambadna"]
            if str(got) != version:
                fail(where, f"{what}: versions.yml says mambadna '{got}', --version says '{version}'")
        except (yaml.YAMLError, KeyError, TypeError) as e:
            fail(where, f"{what}: versions.yml does not parse as {{process: {{mambadna: X}}}}: {e}")
    return produced


def read_test_ext(conf_path):
    """ext.args per process from conf/test.config (withName: 'X' { ext.args = '...' })."""
    text = open(conf_path).read()
    ext = {}
    for name, block in re.findall(r"withName:\s*'(\w+)'\s*\{(.*?)\}", text, re.S):
        m = re.search(r"ext\.args\s*=\s*'([^']*)'", block)
        if m:
            ext[name] = m.group(1)
    return ext


def make_data(md, data):
    run = lambda *a: subprocess.run([md, *a], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run("simulate", "genomes", "-o", f"{data}/genomes", "-l", "20k", "--chroms", "2", "-t", "1", "-q")
    genomes = sorted(glob.glob(f"{data}/genomes/*.fa"))
    run("simulate", "reads", "-n", "40", "-l", "300,50", "-e", "0.01", "-o", f"{data}/reads.fq", "-q", *genomes)
    return genomes, f"{data}/reads.fq"


def check_workflow(root):
    where = os.path.join(root, "main.nf")
    text = open(where).read()
    for tool in MODULES:
        name = f"MAMBADNA_{tool.upper()}"
        inc = re.search(rf"include\s*\{{\s*{name}\s*\}}\s*from\s*'([^']+)'", text)
        if not inc:
            fail(where, f"does not include {name}")
            continue
        target = os.path.normpath(os.path.join(root, inc.group(1) + ".nf"))
        if not os.path.exists(target):
            fail(where, f"{name} included from {inc.group(1)}, which does not exist")
        if not re.search(rf"^\s*{name}\s*\(", text, re.M):
            fail(where, f"{name} is included but never called")
    conf = os.path.join(root, "nextflow.config")
    text = open(conf).read()
    for prof in ("cpu", "gpu", "docker", "test"):
        if not re.search(rf"^\s*{prof}\s*\{{", text, re.M):
            fail(conf, f"no profile '{prof}'")
    gpu = re.search(r"^\s*gpu\s*\{(.*?)^\s{4}\}", text, re.M | re.S)
    if gpu and not ("accelerator" in gpu.group(1) and "containerOptions" in gpu.group(1)):
        fail(conf, "the gpu profile sets no accelerator and containerOptions")
    repo = os.path.normpath(os.path.join(root, "..", ".."))
    for df in ("Dockerfile", "Dockerfile.cuda"):
        if not os.path.exists(os.path.join(repo, df)):
            fail(repo, f"no {df} for the container images")


def main():
    ap = argparse.ArgumentParser(description="Checks pipelines/nextflow without Nextflow.")
    ap.add_argument("root", help="the pipelines/nextflow folder")
    ap.add_argument("--mambadna", default=shutil.which("mambadna"), help="the mambadna binary [on PATH]")
    ap.add_argument("--keep", action="store_true", help="keep the work folders")
    ap.add_argument("--modules", default=",".join(MODULES), help="check only these modules, comma-separated")
    ap.add_argument("--no-script", action="store_true", help="run the stub: blocks only, not the script: blocks")
    a = ap.parse_args()
    if not a.mambadna:
        sys.exit("[E::nf-check] no mambadna binary: give --mambadna")
    md = os.path.abspath(a.mambadna)
    if os.path.basename(md) != "mambadna":
        sys.exit(f"[E::nf-check] {md}: the modules call 'mambadna', so the binary must have that name")
    version = subprocess.run([md, "--version"], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    version = version.removeprefix("mambadna ")
    ext = read_test_ext(os.path.join(a.root, "conf", "test.config"))
    scratch = tempfile.mkdtemp(prefix="nf-check.")
    data = os.path.join(scratch, "data")
    os.makedirs(data)
    made = {}

    def sim():   # the tiny data, made when a script first needs it
        if not made:
            made["genomes"], made["reads"] = make_data(md, data)
            made["human"] = next(g for g in made["genomes"] if os.path.basename(g).startswith("human."))
        return made

    upstream = {}
    # each module's inputs, channel by channel, element by element
    inputs = {
        "pretrain": lambda: [[{"id": "human"}, sim()["human"]]],
        "finetune": lambda: [[{"id": "apes"}, upstream["pretrain"]["model"][0]], [{"id": "genomes"}, sim()["genomes"]]],
        "classify": lambda: [[{"id": "reads"}, sim()["reads"]], [{"id": "apes"}, upstream["finetune"]["model"][0]]],
    }
    for tool in a.modules.split(","):
        if tool not in inputs:
            sys.exit(f"[E::nf-check] --modules: no module '{tool}' (known: {', '.join(MODULES)})")
        mdir = os.path.join(a.root, "modules", "local", "mambadna", tool)
        where = os.path.join(mdir, "main.nf")
        missing = [f for f in ("main.nf", "meta.yml", "environment.yml", "tests/main.nf.test")
                   if not os.path.exists(os.path.join(mdir, f))]
        if missing:
            fail(mdir, f"missing {', '.join(missing)}")
            continue
        n_before = len(failures)
        mod = parse_module(where, where)
        if mod is None:
            continue
        check_meta(mod, os.path.join(mdir, "meta.yml"), where)
        try:
            env_yml = yaml.safe_load(open(os.path.join(mdir, "environment.yml")))
            if not env_yml.get("dependencies") or not env_yml.get("channels"):
                fail(mdir, "environment.yml has no channels or dependencies")
            if "Dockerfile" not in open(os.path.join(mdir, "environment.yml")).read():
                fail(mdir, "environment.yml does not point to the Dockerfile")
        except yaml.YAMLError as e:
            fail(mdir, f"environment.yml: {e}")
        nft = open(os.path.join(mdir, "tests", "main.nf.test")).read()
        if f'process "{mod["name"]}"' not in nft or 'script "../main.nf"' not in nft or '"-stub"' not in nft:
            fail(mdir, "tests/main.nf.test does not name the process and script, or has no -stub test")
        if len(failures) > n_before:
            continue   # structure first: running a malformed module says little
        tool_ext = {"args": ext.get(mod["name"], "")}
        # the stub, with the default prefix and with task.ext.prefix set
        stub_values = _placeholders(mod, data)
        run_module(mod, tool, "stub", stub_values, tool_ext, where, os.path.dirname(md), version, scratch)
        produced = run_module(mod, tool, "stub", stub_values, dict(tool_ext, prefix="renamed"), where,
                              os.path.dirname(md), version, scratch)
        for emit, files in (produced or {}).items():
            if emit != "versions" and any(not os.path.basename(f).startswith("renamed") for f in files):
                fail(where, f"stub: output '{emit}' ignores task.ext.prefix: {[os.path.basename(f) for f in files]}")
        # the real script, when the subcommand exists and its inputs were made
        if a.no_script:
            continue
        if subprocess.run([md, tool, "-h"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            skips.append(f"{tool}: 'mambadna {tool}' does not exist yet; its script: block was not run")
            continue
        try:
            values = inputs[tool]()
        except (KeyError, IndexError):
            skips.append(f"{tool}: its inputs come from a module that did not run")
            continue
        produced = run_module(mod, tool, "script", values, tool_ext, where, os.path.dirname(md), version, scratch)
        if produced:
            for emit, files in produced.items():
                if any(os.path.getsize(f) == 0 for f in files):
                    fail(where, f"script: output '{emit}' is empty")
            upstream[tool] = produced
    check_workflow(a.root)
    if a.keep:
        print(f"work folders kept in {scratch}", file=sys.stderr)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    for s in skips:
        print(f"skipped {s}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} failures", file=sys.stderr)
        return 1
    print("all checks passed" + (f"; {len(skips)} real runs skipped" if skips else ""))
    return 77 if skips else 0


def _placeholders(mod, data):
    """Empty files standing in for the inputs of a stub run (a stub does not read them)."""
    values = []
    for ch in mod["inputs"]:
        vals = []
        for kind, name in ch:
            if kind == "val":
                vals.append({"id": f"stub_{name}"})   # the prefix defaults to meta.id
            else:
                f = os.path.join(data, f"stub_{name}.txt")
                open(f, "a").close()
                vals.append(f)
        values.append(vals)
    return values


if __name__ == "__main__":
    sys.exit(main())
