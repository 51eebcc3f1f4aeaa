#!/usr/bin/env python3
"""Quick structural check of catalogue YAML files, for authors without a Rust
build at hand. The hub's own loader (imi-hub catalogue check) is the
authority; this mirrors its label and cross-reference checks."""
import sys, os, re, yaml

LANGS = "bg cs da de el en es et fi fr ga hr hu it lt lv mt nl pl pt ro sk sl sv".split()
CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
QCODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,62}$")
errors = []

def err(f, path, msg):
    errors.append(f"{f}: {path}: {msg}")

def labels(f, path, value):
    if not isinstance(value, dict):
        err(f, path, "must be a map of 24 languages"); return
    for l in LANGS:
        v = value.get(l)
        if not isinstance(v, str) or not v.strip():
            err(f, path, f"label missing in `{l}`")
    for k in value:
        if k not in LANGS:
            err(f, path, f"unknown language `{k}`")

def walk_form(schema, props, enums):
    if isinstance(schema, dict):
        for k, v in (schema.get("properties") or {}).items():
            props.add(k)
            walk_form(v, props, enums)
        for v in schema.get("enum", []) or []:
            if isinstance(v, str):
                enums.add(v)
        if "const" in schema and isinstance(schema["const"], str):
            enums.add(schema["const"])
        for key in ("items", "additionalProperties", "not", "if", "then", "else"):
            if isinstance(schema.get(key), dict):
                walk_form(schema[key], props, enums)
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for s in schema.get(key, []) or []:
                walk_form(s, props, enums)
        for s in (schema.get("$defs") or {}).values():
            walk_form(s, props, enums)

def main(root):
    vocab = yaml.safe_load(open(os.path.join(root, "common", "vocabulary.yaml")))
    for sec in ("answers", "fields"):
        for k, v in vocab.get(sec, {}).items():
            labels("common/vocabulary.yaml", f"{sec}.{k}", v)
    areas, procs = set(), {}
    files = []
    for d, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(".yaml") and not d.endswith("common"):
                files.append(os.path.join(d, f))
    for p in sorted(files):
        if os.path.basename(p) == "area.yaml":
            a = yaml.safe_load(open(p))
            if not CODE.match(str(a.get("code", ""))): err(p, "code", "bad code")
            areas.add(a.get("code"))
            labels(p, "names", a.get("names"))
            if not a.get("legal_basis"): err(p, "legal_basis", "missing")
    for p in sorted(files):
        if os.path.basename(p) == "area.yaml":
            continue
        d = yaml.safe_load(open(p))
        allowed = {"code","area","kind","names","schema_versions","states","recipients","deadlines","retention","personal_data","actions","questions","answers","fields","codes"}
        for k in d:
            if k not in allowed: err(p, k, "unknown key")
        code = d.get("code", "")
        if not CODE.match(str(code)): err(p, "code", "bad code")
        if code in procs: err(p, "code", "duplicate procedure")
        procs[code] = p
        if d.get("area") not in areas: err(p, "area", f"unknown area {d.get('area')}")
        if d.get("kind") not in ("request", "notification", "repository", "intake"): err(p, "kind", "bad kind")
        labels(p, "names", d.get("names"))
        states = d.get("states") or []
        rec = d.get("recipients") or {}
        if rec.get("rule") not in ("one", "explicit", "countries", "all-countries", "none"): err(p, "recipients.rule", "bad rule")
        ret = d.get("retention") or {}
        for k in ("block_after_closure_months", "delete_after_closure_months"):
            if not isinstance(ret.get(k), int): err(p, f"retention.{k}", "missing")
        for i, dl in enumerate(d.get("deadlines") or []):
            if ("state" in dl) == ("after_field" in dl): err(p, f"deadlines[{i}]", "needs exactly one of state, after_field")
            if "state" in dl and dl["state"] not in states: err(p, f"deadlines[{i}].state", "unknown state")
            if not isinstance(dl.get("days"), int): err(p, f"deadlines[{i}].days", "missing")
        answers = set(vocab.get("answers", {})) | set((d.get("answers") or {}).keys())
        for k, v in (d.get("answers") or {}).items(): labels(p, f"answers.{k}", v)
        fields = set(vocab.get("fields", {})) | set((d.get("fields") or {}).keys())
        for k, v in (d.get("fields") or {}).items(): labels(p, f"fields.{k}", v)
        codes = set((d.get("codes") or {}).keys())
        for k, v in (d.get("codes") or {}).items(): labels(p, f"codes.{k}", v)
        qcodes = set()
        for i, q in enumerate(d.get("questions") or []):
            if not QCODE.match(str(q.get("code", ""))): err(p, f"questions[{i}].code", "bad question code")
            qcodes.add(q.get("code"))
            labels(p, f"questions[{i}].labels", q.get("labels"))
            for a in q.get("answers") or []:
                if a not in answers: err(p, f"questions[{i}].answers", f"unknown answer option {a}")
        openers = 0
        props, enums = set(), set()
        for i, a in enumerate(d.get("actions") or []):
            if not CODE.match(str(a.get("code", ""))): err(p, f"actions[{i}].code", "bad code")
            if a.get("by") not in ("requester", "responder"): err(p, f"actions[{i}].by", "bad role")
            if a.get("opens"):
                openers += 1
                if a.get("from"): err(p, f"actions[{i}].from", "opening action has no from")
            elif not a.get("from"): err(p, f"actions[{i}].from", "follow-up needs from")
            for s in (a.get("from") or []) + [a.get("to")]:
                if s not in states: err(p, f"actions[{i}]", f"unknown state {s}")
            if not isinstance(a.get("form"), dict): err(p, f"actions[{i}].form", "missing form")
            walk_form(a.get("form"), props, enums)
        # A notification may open at once (broadcast) or as a draft.
        if openers != 1 and not (d.get("kind") == "notification" and openers == 2):
            err(p, "actions", f"needs exactly one opening action, found {openers}")
        for k in sorted(props - fields): err(p, "fields", f"no label for form field `{k}`")
        for v in sorted(enums - qcodes - answers - codes): err(p, "codes", f"no label for coded value `{v}`")
        for ptr in d.get("personal_data") or []:
            if ptr.rstrip("/").split("/")[-1] not in props: err(p, "personal_data", f"{ptr} names no form property")
    for e in errors: print(e)
    print(f"areas: {len(areas)}, procedures: {len(procs)}, errors: {len(errors)}")
    sys.exit(1 if errors else 0)

main(sys.argv[1] if len(sys.argv) > 1 else "schemas/catalogue")
