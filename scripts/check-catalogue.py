#!/usr/bin/env python3
"""Quick structural check of catalogue YAML files, for authors without a Rust
build at hand. The hub's own loader (imi-hub catalogue check) is the
authority; this mirrors its shape, label and cross-reference checks
(schemas/src/catalogue/: check.rs, compile.rs, glossary.rs), in the same
order: the vocabulary, calendars, areas, procedures, then glossaries.
Not mirrored: that every form is a valid JSON Schema and accepts its
`example` (that needs a JSON Schema validator)."""
import sys, os, re, datetime, yaml

LANGS = "bg cs da de el en es et fi fr ga hr hu it lt lv mt nl pl pt ro sk sl sv".split()
CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
QCODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,62}$")
# schemas/src/ids.rs: EU and EEA countries as IMI codes them (Greece is EL), and EU.
COUNTRIES = set("AT BE BG CY CZ DE DK EE EL ES FI FR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK IS LI NO EU".split())
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVENTS = ("request-received", "acceptance", "documents-requested", "documents-received",
          "decision", "more-information-requested", "more-information-received")
MAX_FIELD_ERRORS = 20  # shape errors reported per file, as the loader does
errors = []

def err(f, path, msg):
    errors.append(f"{f}: {path}: {msg}")

# --- Reading YAML as the loader's reader (serde_yaml_ng, YAML 1.2) does -----

class Loader(yaml.SafeLoader):
    """Plain scalars typed the YAML 1.2 way: only true/false are booleans, so
    `NO` (Norway), `YES` and `on` stay strings; dates stay strings. Map keys
    are read as their text."""
    def construct_mapping(self, node, deep=False):
        out = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(None, None, "a map key must be a string", k.start_mark)
            out[k.value] = self.construct_object(v, deep=deep)
        return out
Loader.yaml_implicit_resolvers = {}  # every plain scalar reaches plain_scalar()
INT = re.compile(r"([-+]?)(?:0x([0-9a-fA-F]+)|0o([0-7]+)|0b([01]+)|([0-9]+))")
FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

def plain_scalar(loader, node):
    v = loader.construct_scalar(node)
    if node.style is not None:  # quoted or block scalar: a string
        return v
    if v in ("", "~", "null", "Null", "NULL"): return None
    if v in ("true", "True", "TRUE"): return True
    if v in ("false", "False", "FALSE"): return False
    m = INT.fullmatch(v)
    if m:
        sign, h, o, b, d = m.groups()
        if d is not None and len(d) > 1 and d[0] == "0":
            return v  # leading zeros: a string in YAML 1.2
        n = int(h, 16) if h else int(o, 8) if o else int(b, 2) if b else int(d)
        return -n if sign == "-" else n
    if (v[1:] if v.startswith("+") else v) in (".inf", ".Inf", ".INF"): return float("inf")
    if v in ("-.inf", "-.Inf", "-.INF"): return float("-inf")
    if v in (".nan", ".NaN", ".NAN"): return float("nan")
    if FLOAT.fullmatch(v): return float(v)
    return v
Loader.add_constructor("tag:yaml.org,2002:str", plain_scalar)

def load(f):
    try:
        with open(f, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=Loader), True
    except yaml.YAMLError as e:
        m = getattr(e, "problem_mark", None)
        what = ", ".join(x for x in (getattr(e, "problem", None), getattr(e, "context", None)) if x)
        err(f, f"line {m.line + 1} column {m.column + 1}" if m else "$", f"not valid YAML: {what or e}")
    except (OSError, UnicodeDecodeError) as e:
        err(f, "$", f"not readable: {e}")
    return None, False

# --- Shape: each file against its format type (model.rs) -----------------
# A spec is a type name, ("list", spec), ("map", spec), ("enum", values),
# ("null", spec) for an Option, ("either", [specs]), or a dict of keys to
# specs for a struct (unknown keys refused); a key ending in `?` may be left
# out (a serde default).

LABELS = ("map", "str")
U32 = "u32"
PERIOD = {"days?": ("null", U32), "working_days?": ("null", U32),
          "weeks?": ("null", U32), "months?": ("null", U32)}
DEADLINE = {"code": "str", "state?": ("null", "str"), "states?": ("null", ("list", "str")),
            "after_field?": ("null", "str"), "starts?": ("null", ("enum", EVENTS)),
            "period?": ("null", PERIOD), "days?": ("null", U32), "agreed_date?": "bool",
            "more_information?": ("null", ("enum", ("stop", "restart", "none"))),
            "if_field?": ("null", "str"),
            "source?": ("null", ("either", [{"act": "str", "article": "str"}, {"default": "str"}])),
            "consequence?": ("null", "str")}
RETENTION = {"block_after_closure_months": U32, "delete_after_closure_months": U32,
             "closure_states?": ("null", ("list", "str")),
             "delete_after_closure_days?": ("null", U32), "expires_with?": ("null", "str")}
ACTION = {"code": "str", "opens?": "bool", "reassigns?": "bool", "splits?": "bool",
          "broadcasts?": "bool", "disseminates?": "bool", "marks?": ("list", ("enum", EVENTS)),
          "by": ("enum", ("requester", "responder")), "from?": ("list", "str"), "to": "str",
          "form": "any", "example?": ("null", "any")}
PROCEDURE = {"code": "str", "area": "str",
             "kind": ("enum", ("request", "notification", "repository", "intake")),
             "names": LABELS, "schema_versions": ("list", U32), "states": ("list", "str"),
             "recipients": {"rule": ("enum", ("one", "explicit", "countries", "all-countries", "none")),
                            "commission?": "bool"},
             "deadlines?": ("list", DEADLINE), "retention": RETENTION,
             "personal_data?": ("list", "str"), "special_categories?": ("list", "str"),
             "not_personal_data?": ("list", {"field": "str", "reason": "str"}),
             "state_labels?": ("map", LABELS), "action_labels?": ("map", LABELS),
             "actions": ("list", ACTION),
             "questions?": ("list", {"code": "str", "labels": LABELS, "answers": ("list", "str")}),
             "answers?": ("map", LABELS), "fields?": ("map", LABELS), "codes?": ("map", LABELS)}
AREA = {"code": "str", "legal_basis": "str", "names": LABELS}
VOCABULARY = {"answers?": ("map", LABELS), "fields?": ("map", LABELS), "codes?": ("map", LABELS),
              "states?": ("map", LABELS), "actions?": ("map", LABELS)}
CALENDAR = {"country": "str", "weekend": ("list", ("enum", WEEKDAYS)), "valid_until": "date",
            "holidays?": ("list", {"date": "date", "name": "str"})}
GLOSSARY = {"language": "str",
            "terms": ("map", {"term": "str", "act": "str", "labels?": ("list", "str")})}

def date(v):
    """A `YYYY-MM-DD` string as a date, else None."""
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        try: return datetime.date.fromisoformat(v)
        except ValueError: pass
    return None

def fits(v, spec, path, out):
    """Appends (path, message) to `out` for every place `v` does not fit `spec`."""
    at = lambda k: f"{path}.{k}" if path else str(k)
    if isinstance(spec, dict):
        if not isinstance(v, dict):
            out.append((path or "$", "must be a map")); return
        for k in v:
            if k not in spec and f"{k}?" not in spec: out.append((at(k), "unknown key"))
        for key, sub in spec.items():
            k = key.rstrip("?")
            if k in v: fits(v[k], sub, at(k), out)
            elif not key.endswith("?"): out.append((at(k), "missing"))
    elif isinstance(spec, tuple):
        kind, sub = spec
        if kind == "null":
            if v is not None: fits(v, sub, path, out)
        elif kind == "list":
            if not isinstance(v, list): out.append((path, "must be a list")); return
            for i, x in enumerate(v): fits(x, sub, f"{path}[{i}]", out)
        elif kind == "map":
            if not isinstance(v, dict): out.append((path, "must be a map")); return
            for k, x in v.items():
                if not isinstance(k, str): out.append((at(k), "key must be a string"))
                else: fits(x, sub, at(k), out)
        elif kind == "enum":
            if v not in sub: out.append((path, f"must be one of {', '.join(sub)}"))
        elif kind == "either":
            tries = []
            for s in sub:
                tries.append([])
                fits(v, s, path, tries[-1])
            if all(tries): out.append((path, "must be one of: " + " | ".join(
                "{" + ", ".join(s) + "}" for s in sub)))
    elif spec == "str":
        if not isinstance(v, str): out.append((path, "must be a string"))
    elif spec == "bool":
        if not isinstance(v, bool): out.append((path, "must be true or false"))
    elif spec == U32:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**32:
            out.append((path, "must be a whole number, 0 or more"))
    elif spec == "date":
        if date(v) is None: out.append((path, "must be a date (YYYY-MM-DD)"))

def shaped(f, spec):
    """The file's content if it loads and fits its format, else None (the
    loader checks nothing more in a file of the wrong shape)."""
    d, ok = load(f)
    if not ok: return None
    out = []
    fits(d, spec, "", out)
    for path, msg in out[:MAX_FIELD_ERRORS]: err(f, path, msg)
    return None if out else d

# --- Labels and forms --------------------------------------------------------

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

class Forms:
    """What a procedure's forms hold (compile.rs, FormContents): property
    names, string enum/const values, pointers of free-text strings (`*` for
    array items and map values), names of boolean properties and of
    top-level `format: date` properties."""
    def __init__(self):
        self.props, self.enums, self.free_text, self.booleans, self.dates = set(), set(), set(), set(), set()

    def walk(self, schema, at=""):
        if not isinstance(schema, dict): return
        props = schema.get("properties")
        if isinstance(props, dict):
            for k, v in props.items():
                self.props.add(k)
                self.walk(v, at + "/" + k.replace("~", "~0").replace("/", "~1"))
        if isinstance(schema.get("enum"), list):
            self.enums.update(v for v in schema["enum"] if isinstance(v, str))
        if isinstance(schema.get("const"), str):
            self.enums.add(schema["const"])
        t = schema.get("type")
        typed = lambda name: t == name or (isinstance(t, list) and name in t)
        if typed("string") and at and not any(k in schema for k in ("enum", "const", "pattern", "format")):
            self.free_text.add(at)
        if typed("string") and schema.get("format") == "date" and at.count("/") == 1:
            self.dates.add(at[1:])
        if typed("boolean") and at.rsplit("/", 1)[-1]:
            self.booleans.add(at.rsplit("/", 1)[-1])
        for key, sub_at in (("items", at + "/*"), ("additionalProperties", at + "/*"),
                            ("not", at), ("if", at), ("then", at), ("else", at)):
            if key in schema: self.walk(schema[key], sub_at)
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            if isinstance(schema.get(key), list):
                for s in schema[key]: self.walk(s, at)
        if isinstance(schema.get("$defs"), dict):
            for s in schema["$defs"].values(): self.walk(s, "")

# --- A procedure file (compile.rs) ---------------------------------------------

def check_deadlines(p, d, states):
    """The deadlines the loader compiles; one with an error is left out, as
    the loader leaves it out of the later checks."""
    kept = []
    for i, dl in enumerate(d.get("deadlines") or []):
        at = f"deadlines[{i}]"
        state, listed = dl.get("state"), dl.get("states")
        if state is not None and listed is None: runs_in = [state]
        elif state is None and listed: runs_in = listed
        elif state is None and listed is None: runs_in = None
        else:
            err(p, at, "needs one of `state` and `states`, not both"); continue
        if runs_in is not None and dl.get("after_field") is None:
            for s in runs_in:
                if s not in states: err(p, f"{at}.state", f"unknown state `{s}`")
        elif runs_in is None and dl.get("after_field") is not None and dl.get("starts") is None:
            pass
        else:
            err(p, at, "needs exactly one of `state` (or `states`, with an optional `starts`) and `after_field`")
            continue
        # `days: N` alone is short for `period: {days: N}`; not both.
        period, days = dl.get("period"), dl.get("days")
        pf = period or {}
        given = [x for x in (pf.get("days") if pf.get("days") is not None else days,
                             pf.get("working_days"), pf.get("weeks"), pf.get("months")) if x is not None]
        if len(given) != 1 or (period is not None and days is not None):
            err(p, f"{at}.period", "needs exactly one of `days`, `working_days`, `weeks` and `months`")
            continue
        if dl.get("source") is None:
            err(p, f"{at}.source", f"`{dl.get('code')}` names no source: `{{act: …, article: …}}` or `{{default: reason}}`")
            continue
        kept.append(dl)
    return kept

def check_action(p, i, a, kind, states):
    """The action's checks; False when the loader would not compile it."""
    at = lambda k: f"actions[{i}].{k}"
    if not CODE.match(a["code"]):
        err(p, at("code"), "bad code"); return False
    for s in a.get("from", []) + [a["to"]]:
        if s not in states: err(p, at("from/to"), f"unknown state `{s}`")
    flag = lambda k: a.get(k, False)
    by = a["by"]
    if (flag("reassigns") or flag("splits")) and (flag("opens") or by != "responder" or (flag("reassigns") and flag("splits"))):
        err(p, at("reassigns"), "only a responder's follow-up action can hand the exchange on")
    if (flag("broadcasts") or flag("disseminates")) and kind != "notification":
        err(p, at("broadcasts"), "only a notification (1:N) procedure broadcasts or disseminates")
    if flag("disseminates") and (flag("opens") or by != "responder" or flag("broadcasts")):
        err(p, at("disseminates"), "dissemination is a recipient's (responder's) follow-up action")
    if flag("broadcasts") and by != "requester":
        err(p, at("broadcasts"), "only the originator broadcasts")
    if flag("opens") and a.get("from"): err(p, at("from"), "opening action has no from")
    elif not flag("opens") and not a.get("from"): err(p, at("from"), "follow-up needs from")
    if not isinstance(a["form"], (dict, bool)):
        err(p, at("form"), "not a valid JSON Schema"); return False
    return True

def check_procedure(p, d, vocab, areas):
    """Checks one procedure file that fits the format."""
    code = d["code"]
    if not CODE.match(code): err(p, "code", "bad code")
    if not CODE.match(d["area"]): err(p, "area", "bad code")
    elif d["area"] not in areas: err(p, "area", f"unknown area {d['area']}")
    if not d["schema_versions"]: err(p, "schema_versions", "lists no version")
    labels(p, "names", d["names"])
    states = d["states"]
    deadlines = check_deadlines(p, d, states)
    ret = d["retention"]
    for s in ret.get("closure_states") or []:
        if s not in states: err(p, "retention.closure_states", f"unknown state `{s}`")

    own = lambda k: d.get(k) or {}
    for sec in ("answers", "fields", "codes", "state_labels", "action_labels"):
        for k, v in own(sec).items(): labels(p, f"{sec}.{k}", v)
    # A case's status and its actions read in the official's language.
    for s in states:
        if s not in own("state_labels") and s not in vocab["states"]:
            err(p, "states", f"no label for state `{s}`")
    for i, a in enumerate(d["actions"]):
        if a["code"] not in own("action_labels") and a["code"] not in vocab["actions"]:
            err(p, f"actions[{i}].code", f"no label for action `{a['code']}`")
    answers = set(vocab["answers"]) | set(own("answers"))
    qcodes = set()
    for i, q in enumerate(d.get("questions") or []):
        if not QCODE.match(q["code"]): err(p, f"questions[{i}].code", "bad question code")
        qcodes.add(q["code"])
        labels(p, f"questions[{i}].labels", q["labels"])
        for a in q["answers"]:
            if a not in answers: err(p, f"questions[{i}].answers", f"unknown answer option {a}")

    forms, compiled, marked = Forms(), [], set()
    openers = sum(1 for a in d["actions"] if a.get("opens"))
    for i, a in enumerate(d["actions"]):
        forms.walk(a["form"])
        if not check_action(p, i, a, d["kind"], states): continue
        if any(x["code"] == a["code"] for x in compiled):
            err(p, f"actions[{i}].code", f"action `{a['code']}` is declared twice"); continue
        compiled.append(a)
        # The opening action is the event `request-received`.
        marked.update(a.get("marks", []) + (["request-received"] if a.get("opens") else []))
    notification = d["kind"] == "notification"
    if notification and not any(a.get("broadcasts") for a in compiled):
        err(p, "actions", "a notification needs an action that broadcasts (else nobody ever receives it)")
    # A notification may open at once (broadcast) or as a draft.
    if openers != 1 and not (notification and openers == 2):
        err(p, "actions", f"needs exactly one opening action, found {openers}")

    fields = set(vocab["fields"]) | set(own("fields"))
    codes = set(vocab["codes"]) | set(own("codes"))
    for k in sorted(forms.props - fields): err(p, "fields", f"no label for form field `{k}`")
    for v in sorted(forms.enums - qcodes - answers - codes): err(p, "codes", f"no label for coded value `{v}`")
    for key in ("personal_data", "special_categories"):
        for ptr in d.get(key) or []:
            if ptr.rstrip("/").split("/")[-1] not in forms.props: err(p, key, f"{ptr} names no form property")
    if ret.get("expires_with") is not None and ret["expires_with"] not in forms.dates:
        err(p, "retention.expires_with", f"`{ret['expires_with']}` is no date field of the forms")
    for i, n in enumerate(d.get("not_personal_data") or []):
        if n["field"] not in forms.free_text:
            err(p, f"not_personal_data[{i}]", f"`{n['field']}` is not a free-text field of any form")
        if not n["reason"].strip():
            err(p, f"not_personal_data[{i}].reason", "gives no reason")
    for dl in deadlines:
        if dl.get("if_field") is not None and dl["if_field"] not in forms.booleans:
            err(p, "deadlines", f"`{dl['code']}` applies if `{dl['if_field']}`, which is no boolean of the forms")
        if dl.get("consequence") is not None and dl["consequence"] not in codes:
            err(p, "deadlines", f"no label for the consequence `{dl['consequence']}`")
        if dl.get("after_field") is None and dl.get("starts") is not None and dl["starts"] not in marked:
            err(p, "deadlines", f"`{dl['code']}` starts at `{dl['starts']}`, which no action marks")
        if dl.get("after_field") is not None and dl["after_field"] not in forms.props:
            err(p, "deadlines", f"`{dl['code']}` counts from `{dl['after_field']}`, which no form has")

# --- Glossaries (glossary.rs) --------------------------------------------------

def words(s):
    """Lower-case words: runs of letters and digits."""
    return [w.lower() for w in re.split(r"[^\w]|_", s) if w]

def uses_term(label, term):
    """Does `label` use every word of `term`? A word matches a word of the
    label that shares its first max(3, length - 3) letters."""
    in_label = words(label)
    for t in words(term):
        need = min(max(len(t) - 3, 3), len(t))
        if not any(len(w) >= need and w[:need] == t[:need] for w in in_label):
            return False
    return True

def labels_named(ref, vocab, areas, procs):
    """Every label a reference such as `code:PQ-NURSE` names."""
    kind, sep, key = ref.partition(":")
    if not sep: return []
    ps = procs.values()
    def shared(vsec, psec):
        return [l for l in [vocab[vsec].get(key)] + [(p.get(psec) or {}).get(key) for p in ps] if l is not None]
    if kind == "procedure": return [p["names"] for p in ps if p["code"] == key]
    if kind == "area": return [areas[key]] if key in areas else []
    if kind == "code": return shared("codes", "codes")
    if kind == "answer": return shared("answers", "answers")
    if kind == "state": return shared("states", "state_labels")
    if kind == "action": return shared("actions", "action_labels")
    if kind == "field":
        if "/" in key:  # `field:<procedure>/<name>`: its own label, else the shared one
            code, name = key.split("/", 1)
            own = [(p.get("fields") or {}).get(name) for p in ps if p["code"] == code]
            return [l if l is not None else vocab["fields"][name] for l in own
                    if l is not None or name in vocab["fields"]]
        return shared("fields", "fields")
    return []

def check_glossary(g, d, vocab, areas, procs):
    lang = d["language"]
    if lang not in LANGS:
        err(g, "language", f"`{lang}` is not one of the 24 official languages"); return
    for concept, t in sorted(d["terms"].items()):
        if not t["term"].strip(): err(g, f"terms.{concept}.term", "is empty")
        for ref in t.get("labels", []):
            found = labels_named(ref, vocab, areas, procs)
            if not found: err(g, f"terms.{concept}.labels", f"`{ref}` names no label of the catalogue")
            for l in found:
                if lang in l and not uses_term(l[lang], t["term"]):
                    err(g, f"terms.{concept}", f"`{ref}` reads \"{l[lang]}\", not the official term \"{t['term']}\"")

# --- The folder (check.rs) -----------------------------------------------------

def main(root):
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root)
                   for f in fs if f.endswith((".yaml", ".yml")))
    name = lambda p: os.path.basename(p)
    folder = lambda p: os.path.basename(os.path.dirname(p))
    vocab = {k: {} for k in ("answers", "fields", "codes", "states", "actions")}
    for p in (p for p in files if name(p) == "vocabulary.yaml"):
        v = shaped(p, VOCABULARY)
        if v is None: continue
        for sec in vocab:
            for k, l in (v.get(sec) or {}).items(): labels(p, f"{sec}.{k}", l)
            vocab[sec].update(v.get(sec) or {})
    for p in (p for p in files if folder(p) == "calendars"):
        c = shaped(p, CALENDAR)
        if c is None: continue
        if c["country"] not in COUNTRIES or name(p) != f"{c['country']}.yaml":
            err(p, "country", f"`{c['country']}` is not a country code, or not the file's name"); continue
        until = date(c["valid_until"])
        for h in c.get("holidays") or []:
            if date(h["date"]) > until: err(p, "holidays", f"{h['date']} is after `valid_until` {c['valid_until']}")
    areas, procs = {}, {}
    for p in (p for p in files if name(p) == "area.yaml"):
        a = shaped(p, AREA)
        if a is None: continue
        labels(p, "names", a["names"])
        if not CODE.match(a["code"]): err(p, "code", "bad code")
        elif a["code"] in areas: err(p, "code", f"area `{a['code']}` is declared twice")
        else: areas[a["code"]] = a["names"]
    for p in files:
        if name(p) in ("area.yaml", "vocabulary.yaml") or folder(p) in ("calendars", "glossary"):
            continue
        d = shaped(p, PROCEDURE)
        if d is None: continue
        before = len(errors)
        check_procedure(p, d, vocab, areas)
        # Only a procedure without errors is loaded (and counted, and named by glossaries).
        if len(errors) == before:
            if d["code"] in procs: err(p, "code", "duplicate procedure")
            else: procs[d["code"]] = d
    # Last: a glossary names labels of every kind.
    for p in (p for p in files if folder(p) == "glossary"):
        g = shaped(p, GLOSSARY)
        if g is not None: check_glossary(p, g, vocab, areas, procs)
    for e in errors: print(e)
    print(f"areas: {len(areas)}, procedures: {len(procs)}, errors: {len(errors)}")
    sys.exit(1 if errors else 0)

main(sys.argv[1] if len(sys.argv) > 1 else "schemas/catalogue")
