"""Every number the template suggester judges columns and keys by, in one commented table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SuggestThresholds:
    """Every number the suggester judges columns and keys by; the code reads THRESHOLDS."""

    # -- sampling
    sample_rows: int = 20_000  # enough rows to judge types and keys; bigger tables stay fast
    # -- types, judged on a column's distinct values
    link_share: float = 0.9  # URLs or emails if 90% look like one: a few "n/a" hide nothing
    kind_share: float = 0.95  # dates, numbers, slugs, codes: a stray typo keeps the type
    free_text_avg_len: int = 80  # values longer than this on average are prose, not a fact
    free_text_spaces: int = 12  # ... as are values of more than 13 words on average
    categorical_uniqueness: float = 0.5  # values repeat (one per two rows at most): a category
    # -- entity keys
    min_distinct: int = 2  # one value names no entity and is a guessable answer
    key_max_blank_share: float = 0.2  # a key must name at least 80% of the rows
    key_max_avg_len: int = 60  # longer values (sentences) read badly as an entity's name
    uniqueness_weight: float = 2.0  # key score: 2 × the share of distinct values, plus bonuses
    name_bonus: float = 2.0  # a name-like column (name, title, event) beats a merely unique one
    key_max_name_words: float = 4.5  # names average ≤ 4.5 words ("Men's Individual Time Trial")
    prose_key_penalty: float = 3.0  # more words per value: prose or a list, whatever the column
    identifier_penalty: float = 1.5  # codes name an entity, but less readably than names
    date_key_min_uniqueness: float = 0.95  # a date keys a time series only if nearly unique
    date_key_penalty: float = 2.5  # ... and ranks below name-like keys ("msft on 2003-09-19")
    single_key_min_uniqueness: float = 0.5  # a column alone is a key candidate if half unique
    entity_min_uniqueness: float = 0.8  # the entity key alone must tell 80% of rows apart
    rejected_key_score: float = -1.0  # a single key below that: under any usable key (>= -0.6)
    pair_pool: int = 5  # pairs are tried among the 5 most name-like readable columns only
    pair_min_uniqueness: float = 0.9  # a pair key must tell 90% of rows apart
    pair_min_gain: float = 0.05  # ... and 5 points more than either column, else it adds nothing
    max_pairs: int = 3  # the most unique pairs kept as key candidates
    group_qualifier_bonus: float = 1.0  # event + discipline: a grouping column qualifies best
    name_qualifier_bonus: float = 0.5  # a second name-like column qualifies less well
    pair_penalty: float = 1.5  # a pair key reads clumsier than one column
    # -- attribute against key
    min_key_facts: int = 2  # a key yielding a single fact for a column is no key for it
    strict_ambiguity: float = 0.05  # the first key leaving at most 5% of rows ambiguous is taken
    loose_ambiguity: float = 0.20  # else the least ambiguous, if "a function for most rows"
    # -- attributes worth asking about
    max_blank_share: float = 0.5  # a column blank in more than half the rows gets no template
    near_constant_share: float = 0.98  # one value in 98% of rows is a guessable answer
    max_float_len: int = 12  # longer floats are raw measurements nobody recalls; round them
    max_decimals: int = 3  # ... as are coordinates and readings given to 4+ decimals
    max_code_len: int = 4  # letter codes this short (ISO 3166/4217/639, IATA, US states)
    # are facts worth asking; numeric ids and longer or mixed identifiers are not
    code_kind_weight: float = 0.5  # ... and rank below the other attributes
    row_number_min_rows: int = 10  # an index column counting rows 0/1, 2, 3 ... in order
    repeat_share: float = 0.95  # equal to a kept column in 95% of rows: it repeats that one
    quote_width: int = 30  # skip reasons quote at most this many characters of a value
    float_quote_width: int = 12  # ... and of a high-precision number
    # -- usefulness ranking
    pair_key_weight: float = 0.8  # facts behind a two-column key rank lower: clumsier questions
    text_kind_weight: float = 0.9  # text and categories rank below exact dates and numbers (1)


THRESHOLDS = SuggestThresholds()
