"""Synthetic GSM8K-style word problems with exact worked solutions.

Each template builds a short story whose numbers are chosen so that every step comes out
a positive whole number (constructed, not filtered), and writes the solution the way
GSM8K does: one sentence per step with a ``<<a*b=c>>`` calculator annotation, then
``#### N``. The number of steps (2-6) and the size of prices and counts are knobs, so
difficulty can be dialled; train and test are told apart by a hash of the question, so
no question is ever in both, whatever the seed. ``generate`` gives the same problems as
GSM8K-layout rows, for training-data augmentation.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, NamedTuple

import harness
from harness.errors import choices
from harness.plugins import int_option, with_options
from harness.splits import in_bucket
from tasks.gsm8k import PROMPTS

SPLITS = ("train", "test")
MIN_STEPS, MAX_STEPS = 2, 6
BILLS = (5, 10, 20, 50, 100)


class Person(NamedTuple):
    name: str
    he: str
    him: str
    his: str


PEOPLE = tuple(
    Person(name, *(("she", "her", "her") if female else ("he", "him", "his")))
    for name, female in (
        ("Ava", True), ("Liam", False), ("Maya", True), ("Noah", False), ("Zoe", True), ("Omar", False),
        ("Priya", True), ("Lucas", False), ("Elena", True), ("Kenji", False), ("Fatima", True),
        ("Diego", False), ("Grace", True), ("Tariq", False), ("Nora", True), ("Samuel", False),
    )
)
GOODS = (  # plural, one with its article, price range in dollars
    ("notebooks", "a notebook", 2, 6), ("pens", "a pen", 1, 4), ("backpacks", "a backpack", 15, 40),
    ("water bottles", "a water bottle", 4, 12), ("T-shirts", "a T-shirt", 6, 20),
    ("books", "a book", 5, 25), ("candles", "a candle", 3, 9), ("mugs", "a mug", 4, 10),
    ("puzzles", "a puzzle", 8, 18), ("scarves", "a scarf", 7, 22),
)
SALE_ITEMS = (("jacket", "jackets"), ("lamp", "lamps"), ("bike helmet", "bike helmets"),
              ("pair of shoes", "pairs of shoes"), ("board game", "board games"))
SHARED = ("stickers", "pencils", "crayons", "erasers", "marbles")
PRODUCTS = (("machine", "fills", "bottles"), ("bakery oven", "bakes", "loaves"),
            ("printer", "prints", "posters"), ("robot", "packs", "boxes"))


@dataclass
class _Work:
    """The worked solution so far; each ``calc`` both computes a step and writes its sentence."""

    lines: list[str] = field(default_factory=list)
    answer: int = 0  # the result of the last step

    def calc(self, sentence: str, *terms: int | str, money: bool = False) -> int:
        """Fill ``{}`` in ``sentence`` with ``a op b = <<a op b=v>>v`` and return v.

        Operators are evaluated left to right, so one step mixes only + with - or * with /.
        """
        numbers, ops = terms[0::2], terms[1::2]
        if not (set(ops) <= {"+", "-"} or set(ops) <= {"*", "/"}):
            raise ValueError(f"a step mixes precedence levels: {terms}")
        value = Fraction(numbers[0])
        for op, number in zip(ops, numbers[1:], strict=True):
            value = {"+": value + number, "-": value - number, "*": value * number, "/": value / number}[op]
        expr = "".join(map(str, terms))
        if value.denominator != 1 or value <= 0:
            raise ValueError(f"step {expr} = {value} is not a positive whole number")
        shown = f"{' '.join(map(str, terms))} = {'$' if money else ''}<<{expr}={value}>>{value}"
        self.lines.append(sentence.format(shown))
        self.answer = int(value)
        return self.answer


@dataclass
class _Draw:
    """The random source; ``amount`` draws prices, counts and work rates, which grow with ``scale``.

    Ages, speeds and times are drawn directly, so they stay realistic at any scale.
    """

    rng: random.Random
    scale: int

    def amount(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo * self.scale, hi * self.scale)


def _features(rng: random.Random, costs: dict[str, int], budget: int) -> set[str]:
    """Optional story parts whose extra steps add up to exactly ``budget``, chosen at random."""
    fits = [
        set(combo)
        for size in range(len(costs) + 1)
        for combo in itertools.combinations(costs, size)
        if sum(costs[part] for part in combo) == budget
    ]
    return rng.choice(fits)


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _sum(numbers: list[int]) -> list[int | str]:
    """``[a, "+", b, "+", c]``: the terms of a sum for ``_Work.calc``."""
    return list(itertools.chain.from_iterable((n, "+") for n in numbers))[:-1]


def _bill(total: int) -> int:
    """The smallest usual bill above ``total``, or the next hundred for big totals; change is then positive."""
    return next((b for b in BILLS if b > total), (total // 100 + 1) * 100)


def _split_total(rng: random.Random, total: int, parts: int) -> list[int]:
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in itertools.pairwise([0, *cuts, total])]


def shopping(d: _Draw, k: int) -> tuple[str, _Work]:
    """Several items, some bought several at a time, paid with a bill: a step per multi-buy, a total, the change."""
    p, w = d.rng.choice(PEOPLE), _Work()
    multi = 1 if k == 2 else k - 2
    singles = 0 if k == 2 else max(0, 2 - multi) + d.rng.randint(0, 1)
    goods = d.rng.sample(GOODS, multi + singles)
    bought, costs = [], []
    for i, (plural, one, lo, hi) in enumerate(goods):
        price = d.amount(lo, hi)
        if i < multi:
            qty = d.amount(2, 6)
            bought.append(f"{qty} {plural} for ${price} each")
            costs.append(w.calc(f"The {plural} cost {{}}.", qty, "*", price, money=True))
        else:
            bought.append(f"{one} for ${price}")
            costs.append(price)
    total = w.calc(f"In total {p.he} spends {{}}.", *_sum(costs), money=True) if len(costs) > 1 else costs[0]
    bill = _bill(total)
    w.calc(f"{p.he.capitalize()} gets {{}} in change.", bill, "-", total, money=True)
    order = d.rng.sample(bought, len(bought))
    question = (
        f"{p.name} buys {_listing(order)}. {p.he.capitalize()} hands the cashier ${bill}. "
        f"How much change does {p.he} get?"
    )
    return question, w


def painting(d: _Draw, k: int) -> tuple[str, _Work]:
    """A work-rate problem: days to paint fences, with optional helper, break, several fences, work done."""
    p, w = d.rng.choice(PEOPLE), _Work()
    parts = _features(d.rng, {"helper": 1, "break": 1, "fences": 1, "done": 1}, k - 2)
    friend = d.rng.choice([q for q in PEOPLE if q != p])
    r1, r2 = d.amount(2, 9), d.amount(2, 9)
    hours, pause = d.rng.randint(6, 10), d.rng.randint(1, 2)
    days = d.rng.randint(2, 9)
    rate = r1 + r2 if "helper" in parts else r1
    per_day = rate * (hours - pause if "break" in parts else hours)
    done = d.amount(5, 40) if "done" in parts else 0
    total = per_day * days + done
    lengths = _split_total(d.rng, total, d.rng.randint(2, 3)) if "fences" in parts else [total]

    if "fences" in parts:
        total = w.calc("The fences are {} meters long in all.", *_sum(lengths))
    left = w.calc("There are {} meters left to paint.", total, "-", done) if "done" in parts else total
    work = w.calc("The painting time is {} hours a day.", hours, "-", pause) if "break" in parts else hours
    if "helper" in parts:
        rate = w.calc("Together they paint {} meters per hour.", r1, "+", r2)
    per_day = w.calc("That is {} meters per day.", rate, "*", work)
    w.calc("So it takes {} days to finish.", left, "/", per_day)

    who, them, work_verb = ("They", "them", "work") if "helper" in parts else (p.he.capitalize(), p.him, "works")
    text = [
        f"{p.name} has to paint {len(lengths)} fences that are {_listing([str(n) for n in lengths])} meters long."
        if len(lengths) > 1
        else f"{p.name} has to paint a fence that is {total} meters long."
    ]
    if done:
        text.append(f"{p.he.capitalize()} has already painted {done} meters.")
    text.append(f"{p.he.capitalize()} paints {r1} meters per hour.")
    if "helper" in parts:
        text.append(f"{friend.name} helps {p.him} and paints {r2} meters per hour.")
    text.append(
        f"{who} {work_verb} {hours} hours a day, including a {pause}-hour break."
        if "break" in parts
        else f"{who} {work_verb} {hours} hours a day."
    )
    text.append(f"How many days will it take {them} to finish painting?")
    return " ".join(text), w


def sharing(d: _Draw, k: int) -> tuple[str, _Work]:
    """Packs shared equally among students, with optional second pack size, a kept share, classes, prior stock."""
    p, w = d.rng.choice(PEOPLE), _Work()
    parts = _features(d.rng, {"second": 2, "keep": 1, "classes": 1, "already": 1}, k - 2)
    thing = d.rng.choice(SHARED)
    classes, size = d.rng.randint(2, 4), d.rng.randint(3, 8)
    people = classes * size if "classes" in parts else d.rng.randint(3, 9)
    if "keep" in parts:  # the kept amount absorbs the remainder, so any pack sizes work
        a, b = d.amount(2, 9), d.amount(6, 24)
        c, e = (d.amount(2, 5), d.amount(4, 15)) if "second" in parts else (0, 0)
        a = max(a, -(-(2 * people - c * e) // b))  # enough to give everyone at least one
        kept = (a * b + c * e) % people or people
    else:  # pack sizes that are multiples of the group size share out exactly
        a, b = d.amount(2, 9), people * d.rng.randint(1, 4)
        c, e = (d.amount(2, 5), people * d.rng.randint(1, 3)) if "second" in parts else (0, 0)
        kept = 0
    before = d.rng.randint(2, 15)

    total = w.calc(f"The packs hold {{}} {thing}.", a, "*", b)
    if "second" in parts:
        more = w.calc(f"The boxes hold {{}} {thing}.", c, "*", e)
        total = w.calc(f"That is {{}} {thing} in all.", total, "+", more)
    if kept:
        total = w.calc(f"{p.he.capitalize()} shares out {{}} {thing}.", total, "-", kept)
    if "classes" in parts:
        people = w.calc("There are {} students.", classes, "*", size)
    share = w.calc(f"Each student gets {{}} {thing}.", total, "/", people)
    if "already" in parts:
        w.calc(f"Each student now has {{}} {thing}.", share, "+", before)

    packs = f"{a} packs of {b} {thing}" + (f" and {c} boxes of {e} {thing}" if "second" in parts else "")
    group = f"{people} students"
    if "classes" in parts:
        group = f"the {classes} classes {p.he} teaches, which have {size} students each"
    text = [f"{p.name} is a teacher and buys {packs}."]
    text.append(
        f"{p.he.capitalize()} keeps {kept} {thing} and shares the rest equally among {group}."
        if kept
        else f"{p.he.capitalize()} shares all of them equally among {group}."
    )
    if "already" in parts:
        text.append(f"Each student already had {before} {thing}. How many {thing} does each student have now?")
    else:
        text.append(f"How many {thing} does each student get?")
    return " ".join(text), w


def discount(d: _Draw, k: int) -> tuple[str, _Work]:
    """A percent-off sale, with optional quantity, coupon, percent sales tax and change."""
    p, w = d.rng.choice(PEOPLE), _Work()
    parts = _features(d.rng, {"quantity": 1, "coupon": 1, "tax": 2, "change": 1}, k - 2)
    item, items = d.rng.choice(SALE_ITEMS)
    off, tax = d.rng.choice((10, 20, 25, 30, 40, 50, 75)), d.rng.choice((5, 10, 20))
    count = d.rng.randint(2, 6) if "quantity" in parts else 1
    tax_unit = 100 // tax  # a pre-tax amount that is a multiple of this has a whole-dollar tax

    def fits(price: int) -> bool:
        sale = price * (100 - off) // 100
        exact_tax = "tax" not in parts or "coupon" in parts or count * sale % tax_unit == 0
        return price * off % 100 == 0 and sale * count > 2 * tax_unit and exact_tax

    # 400 always fits (its sale price is a multiple of 20), so the choice is never empty
    price = d.rng.choice([n for n in range(10, 400 * d.scale + 1, 5) if fits(n)])
    cost = count * (price - price * off // 100)
    coupon = 0
    if "coupon" in parts:
        coupon = (cost % tax_unit or tax_unit) if "tax" in parts else d.rng.randint(1, min(cost - 1, 15))

    cut = w.calc("The discount is {}.", price, "*", off, "/", 100, money=True)
    cost = w.calc(f"On sale one {item} costs {{}}.", price, "-", cut, money=True)
    if count > 1:
        cost = w.calc(f"{count} {items} cost {{}}.", count, "*", cost, money=True)
    if coupon:
        cost = w.calc("After the coupon that is {}.", cost, "-", coupon, money=True)
    if "tax" in parts:
        added = w.calc("The tax is {}.", cost, "*", tax, "/", 100, money=True)
        cost = w.calc(f"{p.he.capitalize()} pays {{}} in all.", cost, "+", added, money=True)
    if "change" in parts:
        bill = _bill(cost)
        w.calc(f"{p.he.capitalize()} gets {{}} in change.", bill, "-", cost, money=True)

    text = [f"A {item} normally costs ${price}, and a store sells it at {off}% off."]
    text.append(f"{p.name} buys {count} {items}." if count > 1 else f"{p.name} buys one.")
    if coupon:
        text.append(f"{p.he.capitalize()} also uses a ${coupon} coupon on the purchase.")
    if "tax" in parts:
        text.append(f"A {tax}% sales tax is then added to the price after the {'coupon' if coupon else 'sale'}.")
    if "change" in parts:
        text.append(f"{p.he.capitalize()} hands the cashier ${bill}. How much change does {p.he} get?")
    else:
        text.append(f"How much does {p.he} pay in total?")
    return " ".join(text), w


def ages(d: _Draw, k: int) -> tuple[str, _Work]:
    """A chain of people, each age given relative to an earlier one; asks for a sum or a future age."""
    people, w = d.rng.sample(PEOPLE, k), _Work()
    known = [(people[0], d.rng.randint(4, 15))]
    text = [f"{people[0].name} is {known[0][1]} years old."]
    for person in people[1:]:
        ref, age = d.rng.choice(known)
        relations = ["older"] * (age <= 75) + ["times"] * (age <= 45)  # keep every age from 2 to about 90
        if age >= 4:
            relations += ["younger", "half"] if age % 2 == 0 else ["younger"]
        relation = d.rng.choice(relations)
        told = f"{person.name} is {{}} years old."
        if relation == "older":
            gap = d.rng.randint(2, 15)
            text.append(f"{person.name} is {gap} years older than {ref.name}.")
            age = w.calc(told, age, "+", gap)
        elif relation == "younger":
            gap = d.rng.randint(2, min(age - 2, 15))
            text.append(f"{person.name} is {gap} years younger than {ref.name}.")
            age = w.calc(told, age, "-", gap)
        elif relation == "times":
            times = d.rng.randint(2, min(90 // age, 4))
            text.append(f"{person.name} is {('twice', 'three times', 'four times')[times - 2]} as old as {ref.name}.")
            age = w.calc(told, age, "*", times)
        else:
            text.append(f"{person.name} is half as old as {ref.name}.")
            age = w.calc(told, age, "/", 2)
        known.append((person, age))
    if d.rng.random() < 0.5:
        last, age = known[-1]
        years = d.rng.randint(2, 20)
        text.append(f"How old will {last.name} be in {years} years?")
        w.calc(f"In {years} years {last.name} will be {{}} years old.", age, "+", years)
    else:
        text.append(f"What is the sum of the ages of all {k} people?")
        w.calc("Together they are {} years old.", *_sum([age for _, age in known]))
    return " ".join(text), w


def factory(d: _Draw, k: int) -> tuple[str, _Work]:
    """A rate carried up units of time (minute, hour, day, week, weeks), then optionally priced and costed."""
    w = _Work()
    machine, verb, goods = d.rng.choice(PRODUCTS)
    money = d.rng.choice(range(max(0, k - 4), min(2, k - 1) + 1))
    hops = k - money
    start = d.rng.randint(0, 4 - hops)
    hours, days, weeks = d.rng.randint(6, 12), d.rng.randint(4, 7), d.rng.randint(2, 8)
    rate = (d.rng.randint(2, 9), d.amount(10, 60), d.amount(50, 400), d.amount(200, 2000))[start]
    factors = (
        (60, "per hour", ""),
        (hours, "per day", f"It runs {hours} hours a day."),
        (days, "per week", f"It works {days} days a week."),
        (weeks, f"in {weeks} weeks", ""),
    )
    text = [f"A {machine} {verb} {rate} {goods} per {('minute', 'hour', 'day', 'week')[start]}."]
    count = rate
    for factor, where, fact in factors[start : start + hops]:
        text += [fact] if fact else []
        count = w.calc(f"It {verb} {{}} {goods} {where}.", count, "*", factor)
    span = factors[start + hops - 1][1]
    if not money:
        text.append(f"How many {goods} does it make {span}?")
        return " ".join(text), w
    price = d.rng.randint(2, 9)
    text.append(f"Each of the {goods} sells for ${price}.")
    income = w.calc("They sell for {}.", count, "*", price, money=True)
    if money == 1:
        text.append(f"How much money does it earn {span}?")
        return " ".join(text), w
    running = d.rng.randint(1, 9) * 10 ** max(len(str(income)) - 2, 0)  # a round number below the income
    text.append(f"Running the {machine} costs ${running} {span}. How much profit does it make {span}?")
    w.calc("The profit is {}.", income, "-", running, money=True)
    return " ".join(text), w


def travel(d: _Draw, k: int) -> tuple[str, _Work]:
    """Distance from speed and time over several legs, optionally what is left to a destination."""
    p, w = d.rng.choice(PEOPLE), _Work()
    legs, left = d.rng.choice([(n, r) for n in range(1, 6) for r in (0, 1) if n + (n > 1) + r == k])
    trips = [(d.rng.randint(3, 14) * 5, d.rng.randint(2, 6)) for _ in range(legs)]
    moves = [f"at {speed} miles per hour for {time} hours" for speed, time in trips]
    parts = [w.calc(f"Leg {i} is {{}} miles.", speed, "*", time) for i, (speed, time) in enumerate(trips, 1)]
    total = w.calc("In all that is {} miles.", *_sum(parts)) if legs > 1 else parts[0]
    text = [f"{p.name} drives {moves[0]}" + "".join(f", then {m}" for m in moves[1:]) + "."]
    if left:
        trip = total + d.amount(10, 120)
        text.append(f"{p.his.capitalize()} destination is {trip} miles away.")
        text.append(f"How many more miles does {p.he} have to drive?")
        w.calc("There are {} miles left.", trip, "-", total)
    else:
        text.append(f"How many miles does {p.he} drive in all?")
    return " ".join(text), w


TEMPLATES: dict[str, Callable[[_Draw, int], tuple[str, _Work]]] = {
    f.__name__: f for f in (shopping, painting, sharing, discount, ages, factory, travel)
}


@dataclass(frozen=True)
class Problem:
    """One generated problem with its GSM8K-style solution and what made it."""

    question: str
    solution: str
    answer: int
    steps: int
    template: str


def split_of(question: str) -> str:
    """'test' for one question in ten, chosen by content: the splits are disjoint for every seed."""
    return "test" if in_bucket(question, 10) else "train"


def steps_range(value: Any) -> tuple[int, int]:
    """``"2-6"``, ``"4"``, ``4`` or ``(2, 6)`` as an inclusive range of reasoning steps."""
    lo, _, hi = (f"{value[0]}-{value[1]}" if isinstance(value, tuple | list) else str(value)).partition("-")
    try:
        steps = (int(lo), int(hi or lo))
    except ValueError:
        steps = (0, 0)
    if not MIN_STEPS <= steps[0] <= steps[1] <= MAX_STEPS:
        raise harness.HarnessError(
            f"gsm8k-synth steps={value!r} must be N or N-M with {MIN_STEPS} <= N <= M <= {MAX_STEPS}"
        )
    return steps


def problems(seed: int, steps: tuple[int, int], scale: int, split: str) -> Iterator[Problem]:
    """The endless, deduplicated problems of ``split`` drawn from one seeded generator."""
    if split not in SPLITS:
        raise choices("split", split, list(SPLITS))
    draw, seen = _Draw(random.Random(seed), scale), set()
    names = list(TEMPLATES)
    while True:
        name, k = draw.rng.choice(names), draw.rng.randint(*steps)
        question, work = TEMPLATES[name](draw, k)
        if question in seen or split_of(question) != split:
            continue
        seen.add(question)
        solution = "\n".join([*work.lines, f"#### {work.answer}"])
        yield Problem(question, solution, work.answer, len(work.lines), name)


def _option(key: str, value: Any) -> Any:
    if key == "steps":
        return steps_range(value)
    if key == "prompt":
        if value not in PROMPTS:
            raise choices("gsm8k-synth prompt", str(value), list(PROMPTS))
        return value
    return int_option("gsm8k-synth", key, value, 1)


def generate(
    n: int, seed: int = 0, steps: Any = (2, 6), scale: int = 1, split: str = "train"
) -> list[dict[str, str]]:
    """``n`` GSM8K-layout rows; ``split`` defaults to train so augmentation never sees a test question."""
    drawn = problems(seed, steps_range(steps), int_option("gsm8k-synth", "scale", scale, 1), split)
    return [{"question": p.question, "answer": p.solution} for p in itertools.islice(drawn, n)]


@dataclass(frozen=True)
class Gsm8kSynthTask:
    """Generated GSM8K-style problems graded by the ``sympy`` verifier; ``seed`` drives the generator."""

    name: ClassVar[str] = "gsm8k-synth"
    verifier: ClassVar[str] = "sympy"

    steps: tuple[int, int] = (MIN_STEPS, MAX_STEPS)
    scale: int = 1  # multiplies the range of prices, counts and work rates
    size: int = 500  # examples per split when no limit is given
    prompt: str = "chat"

    def configure(self, **options: Any) -> Gsm8kSynthTask:
        """A copy with ``options`` applied; values may be strings, as the CLI passes them."""
        return with_options(self, "gsm8k-synth", options, _option)

    def examples(
        self, split: str = "test", limit: int | None = None, seed: int = 0
    ) -> Iterator[harness.Example]:
        """The first ``limit`` (else ``size``) problems of ``split``; a smaller limit gives a prefix."""
        stream = problems(seed, self.steps, self.scale, split)
        build = PROMPTS[self.prompt]
        return iter(
            [
                harness.Example(
                    prompt=build(p.question),
                    reference=str(p.answer),
                    meta={"solution": p.solution, "steps": p.steps, "template": p.template},
                    id=f"gsm8k-synth-{hashlib.sha256(p.question.encode()).hexdigest()[:12]}",
                )
                for p in itertools.islice(stream, self.size if limit is None else limit)
            ]
        )


@harness.hookimpl
def register_tasks() -> list:
    return [Gsm8kSynthTask()]
