"""Make tasks/tests/data/ifeval/reference.jsonl.gz: lm-eval's own IFEval checkers run on a
corpus of responses, so tasks/tests/ifeval.rs can measure agreement with the reference.

Run (see README.md next to this file for the environment):
  NLTK_DATA=/tmp/nltk_data python make_fixture.py \
      /work/shared/data/ifeval/train.jsonl.gz /work/shared/data/alpaca_eval/eval.jsonl.gz out.jsonl.gz

Records (one JSON object a line), by "kind":
  ifeval:    doc (key, prompt, instruction_id_list, kwargs), responses: [{response, strict,
             loose}] (lm_eval.tasks.leaderboard.ifeval.utils.test_instruction_following_strict/_loose)
  text:      text, sentences (count_sentences), words (count_words), tokens
             (len(nltk.word_tokenize)), upper_tokens (tokens with str.isupper())
  model:     as ifeval, one real SmolLM2-135M-Instruct answer (generate_smollm2.py; optional
             4th argument, the JSONL it writes)
  lang:      text, lang (langdetect.detect, or null when it raises): Faker lorem paragraphs
             of 19 locales and GPT-4 answers as is, upper- and lower-cased
The responses are made here, deterministically (random.Random(0)): GPT-4 answers from
AlpacaEval as natural text, then edits aimed at each instruction of the doc (some meant to
pass, some to miss), plus noise lines the loose score forgives.
"""
import gzip, json, random, re, sys

from langdetect import DetectorFactory, detect
DetectorFactory.seed = 0  # langdetect is randomised; seed it so the fixture is stable

from lm_eval.tasks.leaderboard.ifeval import instructions_util as U
from lm_eval.tasks.leaderboard.ifeval import utils as IU

ifeval_path, alpaca_path, out_path = sys.argv[1:4]
docs = [json.loads(l) for l in gzip.open(ifeval_path, "rt")]
texts = [json.loads(l)["output"] for l in gzip.open(alpaca_path, "rt")]
rng = random.Random(0)


def cut(t, n=1400):
    if len(t) <= n:
        return t
    i = t.rfind("\n", 0, n)
    return t[: i if i > 200 else n]


texts = [cut(t) for t in texts]

# multilingual text: lines of lm-eval's task files per langdetect language, Faker lorem
ML = {}
try:
    # {lang: [lines]} from lm-eval's task files (see README.md); only prose-like lines
    for code, lines in json.load(open("/tmp/multiling.json")).items():
        for t in lines:
            body = [c for c in t if not c.isspace()]
            if "{" in t or "doc_to_text" in t or "|" in t:
                continue
            if sum(c.isalpha() for c in body) >= 0.8 * len(body):
                ML.setdefault(code, []).append(t)
except Exception as e:
    print("no lm-eval lines:", e, file=sys.stderr)
FAKER = {}
try:
    from faker import Faker
    for loc, code in [("ar_AA", "ar"), ("bn_BD", "bn"), ("de_DE", "de"), ("fa_IR", "fa"),
                      ("fr_FR", "fr"), ("it_IT", "it"), ("ja_JP", "ja"), ("pl_PL", "pl"),
                      ("ru_RU", "ru"), ("th_TH", "th"), ("uk_UA", "uk"), ("vi_VN", "vi"),
                      ("he_IL", "he"), ("el_GR", "el"), ("cs_CZ", "cs"), ("nl_NL", "nl"),
                      ("da_DK", "da"), ("hi_IN", "hi"), ("ko_KR", "ko")]:
        f = Faker(loc)
        f.seed_instance(0)
        for _ in range(4):
            p = f.paragraph(nb_sentences=6)
            ML.setdefault(code, []).append(p)
            FAKER.setdefault(code, []).append(p)
except Exception as e:
    print("faker unavailable:", e, file=sys.stderr)


def sentences(t):
    return [s for s in re.split(r"(?<=[.!?])\s+", t) if s.strip()]


def attempt(doc, base, miss):
    """Edit `base` towards the doc's instructions; with `miss`, aim just past a threshold."""
    r = base
    for iid, kw in zip(doc["instruction_id_list"], doc["kwargs"]):
        kw = {k: v for k, v in kw.items() if v}
        off = 1 if miss and rng.random() < 0.5 else 0
        if iid == "keywords:existence":
            ks = kw["keywords"][: len(kw["keywords"]) - off]
            r += "\n\n" + " and ".join(f"the {k}" for k in ks) + " matter here."
        elif iid == "keywords:frequency":
            n = kw["frequency"]
            if kw["relation"] == "at least":
                r = re.sub(kw["keyword"], "thing", r, flags=re.I)
                r += " " + " ".join([kw["keyword"].capitalize()] * (n - off)) + "."
            else:
                r = re.sub(kw["keyword"], "thing", r, flags=re.I)
                r += (" " + kw["keyword"]) * (n - 1 + off)
        elif iid == "keywords:forbidden_words":
            if not off:
                for w in kw["forbidden_words"]:
                    r = re.sub(r"\b" + w + r"\b", "", r, flags=re.I)
            else:
                r += " " + kw["forbidden_words"][0].upper() + "!"
        elif iid == "keywords:letter_frequency":
            L, n = kw["letter"], kw["let_frequency"]
            if kw["let_relation"] == "at least":
                have = r.lower().count(L)
                r += " " + L * max(0, n - have - off)
            else:
                r = re.sub(L, "", r, flags=re.I)
                r += " " + L * (n - 1 + off)
        elif iid == "language:response_language":
            pool = ML.get(kw["language"]) or ML.get("en")
            if not off and pool:
                r = rng.choice(pool)
        elif iid == "length_constraints:number_sentences":
            s = sentences(r)
            n = kw["num_sentences"]
            if kw["relation"] == "less than":
                r = " ".join(s[: max(1, n - 1 + off)])
            else:
                while len(s) < n + 2:
                    s = s + s
                r = " ".join(s[: n - off])
        elif iid == "length_constraints:number_paragraphs":
            s = sentences(r)
            n = kw["num_paragraphs"] + (rng.choice([-1, 1]) if off else 0)
            n = max(1, n)
            while len(s) < n:
                s = s + s
            k = len(s) // n
            paras = [" ".join(s[i * k:(i + 1) * k if i < n - 1 else len(s)]) for i in range(n)]
            r = rng.choice(["\n\n***\n\n", "\n***\n", " *** "]).join(paras)
        elif iid == "length_constraints:number_words":
            w = r.split(" ")
            n = kw["num_words"]
            if kw["relation"] == "less than":
                r = " ".join(w[: max(1, n - 3 + 6 * off)])
            else:
                while len(w) < n + 10:
                    w = w + w
                r = " ".join(w[: n + 2 - 6 * off])
        elif iid == "length_constraints:nth_paragraph_first_word":
            s = sentences(r)
            n = kw["num_paragraphs"] - off
            while len(s) < n:
                s = s + s
            k = max(1, len(s) // max(n, 1))
            paras = [" ".join(s[i * k:(i + 1) * k]) for i in range(n)]
            j = kw["nth_paragraph"] - 1
            if j < len(paras):
                fw = kw["first_word"]
                fw = rng.choice([fw, fw.capitalize(), '"' + fw + ',', "'" + fw.upper() + "."])
                paras[j] = fw + " " + paras[j]
            r = "\n\n".join(paras)
        elif iid == "detectable_content:number_placeholders":
            r += " " + " ".join(f"[field {i}]" for i in range(kw["num_placeholders"] - off))
        elif iid == "detectable_content:postscript":
            m = kw["postscript_marker"]
            if not off:
                r += "\n\n" + rng.choice([m, m.lower(), m.replace(".", ". ")]) + " Thanks for reading."
            else:
                r += "\n\nPS: thanks."
        elif iid == "detectable_format:number_bullet_lists":
            n = kw["num_bullets"] + (rng.choice([-1, 1]) if off else 0)
            s = sentences(r) * 3
            mark = rng.choice(["* ", "- ", "  * "])
            r = "Here are the points:\n" + "\n".join(mark + x for x in s[:n])
        elif iid == "detectable_format:constrained_response":
            r = rng.choice(["My answer is yes.", "My answer is maybe.", "my answer is no",
                            r + "\n\nMy answer is no."])
        elif iid == "detectable_format:number_highlighted_sections":
            s = sentences(r)
            n = kw["num_highlights"] - off
            for i in range(min(n, len(s))):
                s[i] = rng.choice(["*", "**"]) + s[i].replace("*", "") + rng.choice(["*", "**"])
            r = " ".join(s)
        elif iid == "detectable_format:multiple_sections":
            sp = kw["section_spliter"]
            n = kw["num_sections"] - off
            s = sentences(r) * 3
            r = "\n\n".join(f"{sp} {i + 1}\n{s[i]}" for i in range(n))
        elif iid == "detectable_format:json_format":
            body = json.dumps({"answer": r, "n": 1}, ensure_ascii=rng.random() < 0.5)
            r = rng.choice([body, "```json\n" + body + "\n```", "```\n" + body + "\n```",
                            "Here is the JSON:\n" + body]) if not off else r
        elif iid == "detectable_format:title":
            r = rng.choice(["<<A Title>>\n\n", "<< >>\n", "<<My Answer>> "]) + r if not off else r
        elif iid == "combination:two_responses":
            s = sentences(r)
            h = max(1, len(s) // 2)
            a, b = " ".join(s[:h]), " ".join(s[h:]) or "Other."
            r = rng.choice([f"{a}\n******\n{b}", f"{a}\n******\n{a}", f"******\n{a}\n******\n{b}\n******"])
        elif iid == "combination:repeat_prompt":
            p = kw["prompt_to_repeat"]
            r = (p if not off else "Sure. " + p) + "\n\n" + r
        elif iid == "startend:end_checker":
            e = kw["end_phrase"]
            r += rng.choice([" " + e, "\n\n" + e + '"', " " + e.lower(), " " + e + " Bye."]) if not off else r
        elif iid == "change_case:capital_word_frequency":
            n = kw["capital_frequency"]
            if kw["capital_relation"] == "at least":
                r += " " + " ".join(["VERY", "IMPORTANT", "NOTE", "U.S.A.", "CAN'T", "ISN'T"] * n)[: 12 * n]
            else:
                r = r.lower() + " OK" * (n - 1 + off)
        elif iid == "change_case:english_capital":
            r = r.upper() if not off else r
        elif iid == "change_case:english_lowercase":
            r = r.lower() if not off else r
        elif iid == "punctuation:no_comma":
            r = r.replace(",", "") if not off else r
        elif iid == "startend:quotation":
            r = rng.choice(['"' + r + '"', '"' + r + '"\n', "“" + r + "”"]) if not off else r
    return r


NOISE = [
    lambda r: "Sure! Here is my response:\n" + r,
    lambda r: r + "\nI hope this helps!",
    lambda r: "**Answer**\n" + r + "\n---",
    lambda r: r.replace("\n", "\n\n"),
    lambda r: r.upper(),
    lambda r: r.lower(),
    lambda r: r + " Dr. Smith arrived at 3 p.m. on Jan. 5... Then he left. e.g. the U.S. one.",
    lambda r: "",
    lambda r: "   \n ",
    lambda r: r.replace(".", ".\u201d", 2),
]

out = gzip.open(out_path, "wt", encoding="utf-8")
n_ifeval = 0
for i, doc in enumerate(docs):
    base = texts[i % len(texts)]
    other = texts[(i * 7 + 3) % len(texts)]
    responses = [base, attempt(doc, other, False), attempt(doc, base, True)]
    responses.append(rng.choice(NOISE)(attempt(doc, other, rng.random() < 0.3)))
    inp = IU.InputExample(key=doc["key"], instruction_id_list=doc["instruction_id_list"],
                          prompt=doc["prompt"], kwargs=doc["kwargs"])
    scored = []
    for resp in responses:
        s = IU.test_instruction_following_strict(inp, resp)
        l = IU.test_instruction_following_loose(inp, resp)
        scored.append({"response": resp, "strict": s.follow_instruction_list,
                       "loose": l.follow_instruction_list})
        n_ifeval += 1
    out.write(json.dumps({"kind": "ifeval", "doc": doc, "responses": scored},
                         ensure_ascii=False) + "\n")

import nltk
n_text = 0
for t in texts[:200]:
    for v in (t, t.upper(), t.replace("\n", " ")):
        toks = nltk.word_tokenize(v)
        out.write(json.dumps({"kind": "text", "text": v,
                              "sentences": U.count_sentences(v), "words": U.count_words(v),
                              "tokens": len(toks), "upper_tokens": sum(1 for w in toks if w.isupper())},
                             ensure_ascii=False) + "\n")
        n_text += 1

n_lang = 0
pool = [(c, t) for c, ts in sorted(FAKER.items()) for t in ts] + [("en", t) for t in texts[250:330]] \
    + [("en", t.upper()) for t in texts[330:370]] + [("en", t.lower()) for t in texts[370:410]]
for _, t in pool:
    try:
        lang = detect(t)
    except Exception:
        lang = None
    out.write(json.dumps({"kind": "lang", "text": t, "lang": lang}, ensure_ascii=False) + "\n")
    n_lang += 1
# real model output, if given: SmolLM2-135M-Instruct answers (generate_smollm2.py)
n_model = 0
if len(sys.argv) > 4:
    by_key = {d["key"]: d for d in docs}
    for l in open(sys.argv[4]):
        m = json.loads(l)
        doc = by_key[m["key"]]
        inp = IU.InputExample(key=doc["key"], instruction_id_list=doc["instruction_id_list"],
                              prompt=doc["prompt"], kwargs=doc["kwargs"])
        s = IU.test_instruction_following_strict(inp, m["response"])
        lo = IU.test_instruction_following_loose(inp, m["response"])
        out.write(json.dumps({"kind": "model", "doc": doc, "responses": [
            {"response": m["response"], "strict": s.follow_instruction_list,
             "loose": lo.follow_instruction_list}]}, ensure_ascii=False) + "\n")
        n_model += 1
out.close()
print(f"model responses {n_model}")
print(f"ifeval responses {n_ifeval}, texts {n_text}, language samples {n_lang}")
