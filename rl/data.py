"""Prompt datasets: hub datasets, local jsonl/json/parquet files, or built-in generated tasks.

Each row becomes a :class:`Prompt` with a stable id (per-prompt history is keyed by it), the gold
answer in canonical form (GSM8K ``#### 42`` and MATH ``\\boxed{..}`` conventions), the prompt text
(template + optional chat template) and its token ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewards.verify import parse_gold

from rl.config import Config, ConfigError, DataConfig, eval_data_config

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass
class Prompt:
    id: str
    question: str
    answer: str  # canonical gold answer
    text: str  # what the model sees (template and chat template applied)
    ids: list[int]
    meta: dict[str, Any] = field(default_factory=dict)


def stable_id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def load_rows(name: str, split: str, subset: str | None = None, num_examples: int | None = None,
              seed: int = 0, task_kwargs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows as dicts, from ``builtin:<task>``, a local file, or the Hugging Face hub."""
    if name.startswith("builtin:"):
        from rl.tasks import TASKS, make_task_dataset

        task = name.split(":", 1)[1]
        if task not in TASKS:
            raise ConfigError(f"unknown built-in task '{task}' (available: {sorted(TASKS)})")
        return make_task_dataset(task, n=num_examples or 1000, split=split, seed=seed, **(task_kwargs or {}))

    path = Path(name)
    if path.suffix in LOCAL_FORMATS:
        ds = _local_file(path, split)
    elif path.is_dir():
        ds = _saved(path, split)
    else:
        ds = _hub(name, subset, split)
    if num_examples is not None:
        ds = ds.select(range(min(num_examples, len(ds))))
    return [dict(r) for r in ds]


def is_local(name: str) -> bool:
    """A local file or a ``save_to_disk`` directory (not ``builtin:`` nor a hub id)."""
    return not name.startswith("builtin:") and (Path(name).suffix in LOCAL_FORMATS or Path(name).is_dir())


def file_split(split: str) -> str:
    """A single file has one split, ``train`` (datasets' name for it): ``train[:90%]`` is kept, any
    other base (``test``, the eval default) reads the whole file with its slice."""
    base, bracket, rest = split.partition("[")
    return "train" + bracket + rest


def _local_file(path: Path, split: str):
    import datasets

    if not path.exists():
        raise ConfigError(f"data file not found: {path}")
    if path.suffix == ".jsonl":
        check_jsonl(path)
    datasets.disable_progress_bars()  # a local file loads in moments; its bars only add noise
    try:
        return datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split=file_split(split))
    except Exception as e:  # datasets' own errors are walls: one line naming the file
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise ConfigError(f"{path}: could not be read as {path.suffix[1:]} with split {file_split(split)!r} "
                          f"({type(e).__name__}: {first})") from None
    finally:
        datasets.enable_progress_bars()


def _saved(path: Path, split: str):
    """A directory written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``; the split may
    carry a slice (``train[:90%]``), read by datasets' own parser."""
    import datasets
    from datasets.arrow_reader import ReadInstruction

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise ConfigError(f"{path}: not a dataset saved with save_to_disk ({type(e).__name__}: {first})") from None
    base = split.partition("[")[0]
    if isinstance(ds, datasets.DatasetDict):
        if base not in ds:
            raise ConfigError(f"{path}: no split {base!r} (splits: {sorted(ds)})")
        ds = ds[base]
    else:
        split = file_split(split)  # a saved Dataset is one split, like a file
        base = "train"
    try:
        (instr,) = ReadInstruction.from_spec(split).to_absolute({base: len(ds)})
    except Exception as e:  # noqa: BLE001 - datasets' message names what is wrong with the slice
        raise ConfigError(f"{path}: bad split {split!r}: {e}") from None
    return ds.select(range(instr.from_, instr.to))


def _hub(name: str, subset: str | None, split: str):
    """A hub dataset. The hub is asked first (one request, 10 s): a name it does not know is one line at
    once; when it cannot be reached (or ``HF_HUB_OFFLINE=1``) the dataset is read from the local cache
    only, without datasets' five retries (33 s measured here), and a miss is one line."""
    import datasets
    from unittest import mock

    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    where = f"dataset '{name}'{f' ({subset})' if subset else ''}, split {split!r}"
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    if not offline:
        try:
            HfApi().dataset_info(name, timeout=10)
        except HfHubHTTPError as e:  # the hub answered: unknown, gated, private
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise ConfigError(f"{where}: not a local file or directory, and the Hugging Face hub does not give it "
                              f"({type(e).__name__}: {first})") from None
        except Exception as e:  # noqa: BLE001 - no answer (no network, DNS, timeout): the cache may still have it
            offline = f"the Hugging Face hub cannot be reached ({type(e).__name__})"
    try:
        if offline:
            with mock.patch.object(datasets.config, "HF_HUB_OFFLINE", True), \
                    mock.patch.object(constants, "HF_HUB_OFFLINE", True):
                return datasets.load_dataset(name, subset, split=split)
        return datasets.load_dataset(name, subset, split=split)
    except Exception as e:  # noqa: BLE001 - every way a hub load fails: one line that names the dataset
        first = (str(e).strip().splitlines() or [""])[0][:300]
        if not offline:
            raise ConfigError(f"{where}: loading it from the Hugging Face hub failed ({type(e).__name__}: {first})") from None
        why = offline if isinstance(offline, str) else "offline (HF_HUB_OFFLINE=1)"
        raise ConfigError(f"{where}: not a local file or directory; {why} and it is not in the local cache "
                          f"({type(e).__name__}: {first}); a local .jsonl/.parquet file or a save_to_disk "
                          "directory works offline") from None


def check_jsonl(path: Path) -> None:
    """One pass over a JSON-lines file: the first undecodable or malformed line is named."""
    rows = 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(f"{path}, line {n}: not UTF-8 (byte {e.start})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}, line {n}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}, line {n}: expected a JSON object per line, got {type(row).__name__}")
            rows += 1
    if not rows:
        raise ConfigError(f"{path}: the file has no rows")


def use_chat_template(tokenizer, mode: str) -> bool:
    has = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has:
        raise ConfigError("data.chat_template=on but the tokenizer has no chat template")
    return has if mode == "auto" else mode == "on"


def mode_text(mode: str, cfg: DataConfig) -> str:
    """What ThinkDial's ``mode`` says in the prompt: ``data.mode_prompts[mode]``, else the recipe-level
    system prompt of :data:`rewards.thinkdial.MODE_PROMPTS`."""
    from rewards.thinkdial import MODE_PROMPTS, MODES

    if mode not in MODES:
        raise ConfigError(f"mode {mode!r} is not a ThinkDial mode ({', '.join(MODES)})")
    return cfg.mode_prompts.get(mode) or MODE_PROMPTS[mode]


def render_prompt(question: str, cfg: DataConfig, tokenizer, row: dict[str, Any] | None = None) -> tuple[str, list[int]]:
    """``data.prompt_template`` may use ``{question}`` and any other column, e.g. ``{budget}``.

    With ``data.modes`` (ThinkDial) the row's ``mode`` (until drawn: the first of ``data.modes``) is stated
    by its text (:func:`mode_text`): where the template says ``{mode}``, else as the system prompt (the
    chat template's system message; without one, a line before the prompt)."""
    fields = {**(row or {}), "question": question}
    system = cfg.system_prompt
    if cfg.modes:
        text = mode_text(str(fields.get("mode") or cfg.modes[0]), cfg)
        if "{mode}" in cfg.prompt_template:
            fields["mode"] = text
        else:
            system = text
    try:
        body = cfg.prompt_template.format(**fields)
    except KeyError as e:
        raise ConfigError(f"data.prompt_template uses {{{e.args[0]}}}, which is not a dataset column") from e
    if use_chat_template(tokenizer, cfg.chat_template):
        messages = ([{"role": "system", "content": system}] if system else [])
        messages.append({"role": "user", "content": body})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             **cfg.chat_template_kwargs)
        return text, tokenizer(text, add_special_tokens=False)["input_ids"]
    if cfg.chat_template_kwargs:
        raise ConfigError(f"data.chat_template_kwargs={cfg.chat_template_kwargs} is set, but the prompts are not "
                          "chat-templated (data.chat_template, or the tokenizer has no template)")
    if system:
        body = f"{system}\n{body}"
    return body, tokenizer(body)["input_ids"]


@dataclass
class Row:
    """A dataset row that passed validation: its id, question and canonical gold answer."""

    index: int
    id: str
    question: str
    answer: str
    row: dict[str, Any]


def _gold(value: Any, fmt: str) -> str:
    """The canonical gold answer of one row, or ValueError saying what is wrong with it."""
    if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and value != value):
        raise ValueError("the gold answer is missing or empty")
    text = str(value)
    answer = parse_gold(text, fmt)
    if fmt == "auto" and "\n" in text.strip() and "####" not in text and "\\boxed" not in text and "\\fbox" not in text:
        raise ValueError("the gold answer is several lines with no '####' or \\boxed{} marking the answer "
                         "(set data.answer_format=raw if the whole text is the answer)")
    return answer


def parse_rows(rows: list[dict[str, Any]], cfg: DataConfig, source: str) -> list[Row]:
    """Check every row before any model is loaded. Rows without a usable question or gold answer
    are refused (``data.bad_rows=error``, one line naming the first) or dropped with a warning that
    counts them (``skip``); never silently kept."""
    if not rows:
        raise ConfigError(f"dataset '{source}' is empty")
    columns = set(rows[0])
    for key, col in (("question_column", cfg.question_column), ("answer_column", cfg.answer_column)):
        if col not in columns:
            raise ConfigError(
                f"dataset '{source}' has no column '{col}' (data.{key}); columns: {sorted(columns)}"
            )
    if cfg.id_column and cfg.id_column not in columns:
        raise ConfigError(f"dataset '{source}' has no column '{cfg.id_column}' (data.id_column)")
    good, bad = [], []
    for i, row in enumerate(rows):
        q = row.get(cfg.question_column)
        pid = str(row[cfg.id_column]) if cfg.id_column else str(row.get("id") or stable_id(str(q)))
        try:
            if q is None or not str(q).strip():
                raise ValueError("the question is missing or empty")
            if cfg.modes and row.get("mode") is not None:  # a mode column wins over the draw: one of ThinkDial's
                check_mode(row["mode"])
            good.append(Row(i, pid, str(q), _gold(row.get(cfg.answer_column), cfg.answer_format), row))
        except ValueError as e:
            bad.append((i, pid, str(e)))
    if bad:
        i, pid, why = bad[0]
        what = f"dataset '{source}': {len(bad)} of {len(rows)} rows are unusable (first: row {i}, id {pid}: {why})"
        if cfg.bad_rows == "error":
            raise ConfigError(f"{what}; fix them, or drop them with data.bad_rows=skip")
        warnings.warn(f"{what}; skipped (data.bad_rows=skip)", stacklevel=2)
        if not good:
            raise ConfigError(f"dataset '{source}': no usable row left")
    return good


def check_mode(value: Any) -> None:
    """A dataset's ``mode`` value: one of ThinkDial's modes, else ValueError naming the closest."""
    from rewards.thinkdial import MODES

    from rl.config.schema import closest

    if value not in MODES:
        raise ValueError(f"the mode {value!r} is not a ThinkDial mode ({', '.join(MODES)})" + closest(str(value), list(MODES)))


def build_prompts(rows: list[dict[str, Any]] | list[Row], cfg: DataConfig, tokenizer, source: str) -> list[Prompt]:
    """One prompt per row; with ``data.modes`` and ``data.mode_mix=all`` one per row and mode (id
    ``<id>@<mode>``, ``meta["mode"]`` set) for the rows without a ``mode`` of their own."""
    parsed = rows if rows and isinstance(rows[0], Row) else parse_rows(rows, cfg, source)
    prompts = []
    for r in parsed:
        # L1 budgets are drawn per step (draw_budgets); until then {budget} renders as the largest
        stand_in = {"budget": cfg.length_budget[1]} if cfg.length_budget and "budget" not in r.row else {}
        if cfg.effort_range and "effort" not in r.row:  # likewise e1's effort: the largest until drawn
            stand_in["effort"] = cfg.effort_range[1]
        meta = {k: v for k, v in r.row.items() if k not in (cfg.question_column, cfg.answer_column)
                and isinstance(v, (int, float, str, bool))}
        meta.setdefault("source", source)
        if cfg.modes and cfg.mode_mix == "all" and r.row.get("mode") is None:
            for m in cfg.modes:  # ThinkDial: every prompt in every mode
                text, ids = render_prompt(r.question, cfg, tokenizer, {**r.row, **stand_in, "mode": m})
                prompts.append(Prompt(f"{r.id}@{m}", r.question, r.answer, text, ids, {**meta, "mode": m}))
            continue
        text, ids = render_prompt(r.question, cfg, tokenizer, {**r.row, **stand_in})
        prompts.append(Prompt(r.id, r.question, r.answer, text, ids, meta))
    return prompts


def load_rows_checked(cfg: DataConfig, *, name: str | None = None, split: str | None = None,
                      subset: str | None = None, num_examples: int | None = None, seed: int = 0) -> list[Row]:
    """Read and validate a data set (no tokenizer needed, so it runs before any model is loaded)."""
    name = name or cfg.name
    rows = load_rows(name, split or cfg.split, subset if name != cfg.name else (subset or cfg.subset),
                     num_examples if num_examples is not None else cfg.num_examples, seed, cfg.task_kwargs)
    return parse_rows(rows, cfg, source=name)


def train_and_eval_rows(cfg: Config) -> tuple[list[Row], list[Row], dict[str, Any]]:
    """The training rows, the eval rows and what the eval set is (``summary.json``'s ``eval_set``).

    A local training file (or a saved ``Dataset``) with no eval data of its own (``eval.name`` unset or
    the same, and ``eval.split`` not picking rows of it: the default ``test``) would be evaluated on its
    own training rows. Instead a seeded share (``eval.holdout``, 10 %) of its rows is held out: left out
    of training and evaluated on. Slices pick rows explicitly (``data.split="train[:90%]"``,
    ``eval.split="train[90%:]"``). Whatever the source, eval prompts that are also training prompts (by
    prompt id) are counted: ``held_out`` is true only when there are none."""
    d, e = cfg.data, cfg.eval
    if not (e.before or e.after or e.every):
        return load_rows_checked(d, seed=cfg.train.seed), [], {}
    name = e.name or d.name
    if holds_out(cfg):
        rows = parse_rows(load_rows(d.name, d.split, d.subset, None, cfg.train.seed, d.task_kwargs), d, source=d.name)
        if len(rows) < 2:
            raise ConfigError(f"dataset '{d.name}' has {len(rows)} usable row: nothing to hold out for eval; "
                              "give eval.name")
        k = min(len(rows) - 1, max(1, round(e.holdout * len(rows))))
        held = set(random.Random(cfg.train.seed).sample(range(len(rows)), k))
        train = [r for i, r in enumerate(rows) if i not in held][:d.num_examples]
        evals = [r for i, r in enumerate(rows) if i in held][:e.num_examples]
        info = {"source": d.name, "split": d.split, "holdout": e.holdout, "seed": cfg.train.seed,
                "note": f"eval: {len(evals)} rows held out of {d.name} ({k} of {len(rows)}, eval.holdout={e.holdout}, "
                        f"seed {cfg.train.seed}); trained on the other {len(rows) - k}"}
    else:
        train = load_rows_checked(d, seed=cfg.train.seed)
        evals = load_rows_checked(eval_data_config(cfg), name=name, split=e.split, subset=e.subset,
                                  num_examples=e.num_examples, seed=e.seed)
        info = {"source": name, "split": e.split}
    ids = {r.id for r in train}
    shared = sum(r.id in ids for r in evals)
    info |= {"rows": len(evals), "overlap": shared, "held_out": shared == 0}
    if shared:
        info["note"] = (f"eval: {shared} of the {len(evals)} eval prompts ({name}, split {e.split}) are training prompts: "
                        "the eval numbers are not held-out (summary.json eval_set.held_out=false)")
    return train, evals, info


def holds_out(cfg: Config) -> bool:
    """Whether the eval set is carved out of the training data (see :func:`train_and_eval_rows`)."""
    d, e = cfg.data, cfg.eval
    if not is_local(d.name) or (e.name is not None and Path(e.name).resolve() != Path(d.name).resolve()):
        return False
    base = e.split.partition("[")[0]
    saved = Path(d.name) / "dataset_dict.json"
    if saved.is_file():  # a saved DatasetDict: its own eval split if it has one
        return base not in json.loads(saved.read_text()).get("splits", [])
    return base != "train"


def load_prompts(cfg: DataConfig, tokenizer, *, name: str | None = None, split: str | None = None,
                 subset: str | None = None, num_examples: int | None = None, seed: int = 0) -> list[Prompt]:
    rows = load_rows_checked(cfg, name=name, split=split, subset=subset, num_examples=num_examples, seed=seed)
    return build_prompts(rows, cfg, tokenizer, source=name or cfg.name)


def with_budget(prompt: Prompt, budget: int, cfg: DataConfig, tokenizer) -> Prompt:
    """The prompt with L1's budget (``meta["budget"] = N``): placed where ``data.prompt_template``
    says ``{budget}``, else L1's instruction ("Think for N tokens.") appended to the question."""
    from rewards.l1 import budget_prompt

    meta = {**prompt.meta, "budget": budget}
    question = prompt.question if "{budget}" in cfg.prompt_template else budget_prompt(
        prompt.question, budget, cfg.budget_mode)
    text, ids = render_prompt(question, cfg, tokenizer, meta)
    return dataclasses.replace(prompt, text=text, ids=ids, meta=meta)


def with_effort(prompt: Prompt, effort: float, cfg: DataConfig, tokenizer) -> Prompt:
    """The prompt with e1's relative effort (``meta["effort"] = r``): placed where
    ``data.prompt_template`` says ``{effort}``, else stated after the question."""
    from rewards.e1 import effort_prompt

    meta = {**prompt.meta, "effort": effort}
    question = prompt.question if "{effort}" in cfg.prompt_template else effort_prompt(prompt.question, effort)
    text, ids = render_prompt(question, cfg, tokenizer, meta)
    return dataclasses.replace(prompt, text=text, ids=ids, meta=meta)


def with_mode(prompt: Prompt, mode: str, cfg: DataConfig, tokenizer) -> Prompt:
    """The prompt in ThinkDial's ``mode`` (``meta["mode"]``), stated as :func:`render_prompt` says."""
    meta = {**prompt.meta, "mode": mode}
    text, ids = render_prompt(prompt.question, cfg, tokenizer, meta)
    return dataclasses.replace(prompt, text=text, ids=ids, meta=meta)


def draw_mode(cfg: DataConfig, seed: int, step: int, prompt_id: str) -> str:
    """ThinkDial's mode of a prompt at a step: one of ``data.modes`` (weights ``data.mode_weights``, else
    uniform), reproducible from (seed, step, prompt id), so a resumed run draws the same."""
    return random.Random(f"{seed}-{step}-{prompt_id}-mode").choices(cfg.modes, weights=cfg.mode_weights)[0]


def draw_budgets(prompts: list[Prompt], cfg: DataConfig, tokenizer, seed: int, step: int) -> list[Prompt]:
    """A fresh L1 token budget (``data.length_budget``), e1 effort (``data.effort_range``) or ThinkDial
    mode (``data.modes``, ``mode_mix=draw``; a prompt with a ``mode`` of its own keeps it) for every
    prompt of a step, reproducible from (seed, step, prompt id)."""
    if cfg.modes and cfg.mode_mix == "draw":
        prompts = [p if p.meta.get("mode") is not None else with_mode(p, draw_mode(cfg, seed, step, p.id), cfg, tokenizer)
                   for p in prompts]
    if cfg.length_budget:
        low, high = cfg.length_budget
        prompts = [with_budget(p, random.Random(f"{seed}-{step}-{p.id}").randint(low, high), cfg, tokenizer)
                   for p in prompts]
    if cfg.effort_range:
        from rewards.e1 import sample_effort

        low, high = cfg.effort_range
        prompts = [with_effort(p, sample_effort(random.Random(f"{seed}-{step}-{p.id}-effort"), low, high), cfg,
                               tokenizer) for p in prompts]
    return prompts


class PromptSampler:
    """Epoch-wise shuffled order of prompt indices, identical on every process; checkpointable."""

    def __init__(self, num_prompts: int, seed: int):
        self.num_prompts, self.seed = num_prompts, seed
        self.epoch, self.pos = 0, 0
        self._order = self._shuffle(0)

    def _shuffle(self, epoch: int) -> list[int]:
        order = list(range(self.num_prompts))
        random.Random(self.seed * 100_003 + epoch).shuffle(order)
        return order

    def next(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos == self.num_prompts:
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._shuffle(self.epoch)
            take = min(k - len(out), self.num_prompts - self.pos)
            out.extend(self._order[self.pos : self.pos + take])
            self.pos += take
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos, "seed": self.seed, "num_prompts": self.num_prompts}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["num_prompts"] != self.num_prompts:
            raise ValueError(
                f"checkpoint was made with {state['num_prompts']} prompts, the dataset now has {self.num_prompts}"
            )
        self.seed, self.epoch, self.pos = state["seed"], state["epoch"], state["pos"]
        self._order = self._shuffle(self.epoch)
