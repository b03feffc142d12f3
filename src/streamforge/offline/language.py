"""English, as data: the cue phrases the chart pipeline reads, kept apart from the rules that use them.

Design choice: everything language-specific that :mod:`~streamforge.offline.read` and
:mod:`~streamforge.offline.link` need sits in one :class:`Language` value. The rules never spell an
English word themselves, so a second language is a second instance of this class (a new file), not
an edit across the pipeline. NL4DV keeps its keyword maps the same way. Phrases are lower-case and
matched on word boundaries; longer phrases are tried first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ENGLISH", "Language"]


def _pairs(text: str) -> dict[str, str]:
    """ "a b=c, d=e" -> {"a b": "c", "d": "e"}: compact tables of phrase -> meaning."""
    out: dict[str, str] = {}
    for item in text.split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            out[" ".join(key.split())] = value.strip()
    return out


@dataclass(frozen=True)
class Language:
    name: str
    # Words that ask for a chart kind anywhere in a sentence ("pie", "scatter"), and words that do so
    # only when a chart noun follows ("line chart", "area graph": "area" alone is a place).
    chart_words: dict[str, str]
    chart_words_before_noun: dict[str, str]
    chart_nouns: frozenset[str]
    table_nouns: frozenset[str]  # "as a table": rows asked for, not a chart
    stacked_words: frozenset[str]
    # Aggregates named before a column ("average age", "number of students", "how many").
    aggregates: dict[str, str]
    # Superlatives: an aggregate right before a measure ("the oldest age"), a ranking before "N".
    superlatives: dict[str, str]  # word -> "desc" | "asc"
    # Words that put the next column on the x axis (or the colour): "by", "for each", "per".
    group_cues: frozenset[str]
    # Sorting: a direction, and what it sorts by.
    order_verbs: frozenset[str]
    directions: dict[str, str]  # phrase -> "asc" | "desc"
    order_targets: dict[str, str]  # phrase -> "x" | "y"
    axis_words: dict[str, str]  # "x axis" -> "x", ...
    top_words: dict[str, str]  # "top" -> "desc", "bottom" -> "asc"
    grains: dict[str, str]  # "yearly", "by year", "weekday" -> a time bucket
    time_cues: frozenset[str]  # "over time", "trend": the x axis is the data's own time column
    share_cues: frozenset[str]  # "share of", "proportion": parts of a whole, a pie
    relation_cues: frozenset[str]  # "relationship", "correlation", "vs": two measures, a scatter
    number_words: dict[str, int]
    negations: frozenset[str]
    comparators: dict[str, str]  # phrase -> SQL operator
    # Everyday words for a column's own, shorter or coded, name: "gender" for ``sex``.
    synonyms: tuple[frozenset[str], ...]
    # Words that stand for a one-letter code in the data ("female" -> 'F').
    code_words: dict[str, str]
    day_names: tuple[str, ...]
    weekend: tuple[str, ...]
    demonym_endings: tuple[str, ...]
    # Glue words: never data on their own.
    stopwords: frozenset[str] = field(default_factory=frozenset)
    # Words of a sentence that name no data even when a column is called so ("number", "total").
    function_words: frozenset[str] = field(default_factory=frozenset)

    def synonyms_of(self, word: str) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for group in self.synonyms:
            if word in group:
                out |= group - {word}
        return out


ENGLISH = Language(
    name="en",
    chart_words=_pairs(
        "pie=pie, pies=pie, donut=pie, doughnut=pie, scatter=scatter, scatterplot=scatter,"
        "histogram=bar, histograms=bar, bar=bar, bars=bar, barchart=bar, linechart=line"
    ),
    chart_words_before_noun=_pairs("line=line, area=area, column=bar, trend=line"),
    chart_nouns=frozenset("chart charts graph graphs plot plots diagram".split()),
    table_nouns=frozenset("table tabular spreadsheet grid".split()),
    stacked_words=frozenset("stacked stack grouped grouping".split()),
    aggregates=_pairs(
        "number of=count, the number=count, count of=count, count=count, counts=count, how many=count,"
        "total number=count, num of=count, frequency=count, frequencies=count,"
        "total=sum, sum of=sum, sum=sum, summed=sum, overall=sum, combined=sum,"
        "average=avg, averages=avg, avg=avg, mean=avg, typical=avg,"
        "maximum=max, max=max, maximal=max, peak=max, minimum=min, min=min, minimal=min"
    ),
    superlatives=_pairs(
        "highest=desc, largest=desc, biggest=desc, greatest=desc, most=desc, oldest=desc, longest=desc,"
        "best=desc, top=desc, heaviest=desc, tallest=desc, richest=desc, lowest=asc, smallest=asc,"
        "least=asc, fewest=asc, youngest=asc, shortest=asc, worst=asc, bottom=asc, cheapest=asc, lightest=asc"
    ),
    group_cues=frozenset(
        "by,per,each,every,for each,for every,of each,in each,from each,across,for different,"
        "of different,different,grouped by,group by,group them by,over,among,colored by,"
        "coloured by,color by,colour by,split by,broken down by,broken out by,stacked by,bin,binned,"
        "bucketed by".split(",")
    ),
    order_verbs=frozenset(
        "order,ordered,orders,ordering,sort,sorted,sorts,sorting,rank,ranked,ranks,ranking,list,arrange,"
        "arranged".split(",")
    ),
    directions=_pairs(
        "desc=desc, descending=desc, descend=desc, decreasing=desc, high to low=desc, highest to lowest=desc,"
        "largest to smallest=desc, biggest to smallest=desc, most to least=desc, z to a=desc,"
        "reverse=desc, reversed=desc, asc=asc, ascending=asc, ascend=asc, increasing=asc, low to high=asc,"
        "lowest to highest=asc, smallest to largest=asc, highest to the lowest=desc,"
        "lowest to the highest=asc, high to the low=desc, low to the high=asc, least to most=asc,"
        "a to z=asc, alphabetical=asc,"
        "alphabetic=asc, alphabetically=asc, lexicographical=asc, lexicographic=asc, chronological=asc"
    ),
    order_targets=_pairs(
        "name=x, names=x, bar=x, bars=x, label=x, labels=x, alphabetical=x, alphabetic=x,"
        "alphabetically=x, lexicographical=x, lexicographic=x, chronological=x, letter=x,"
        "total number=y, number=y, count=y, counts=y, how many=y, value=y, values=y, total=y,"
        "amount=y, frequency=y, sum=y, average=y, mean=y"
    ),
    axis_words=_pairs("x axis=x, x-axis=x, xaxis=x, x=x, the x=x, y axis=y, y-axis=y, yaxis=y, y=y, the y=y"),
    top_words=_pairs("top=desc, first=desc, bottom=asc, last=asc"),
    time_cues=frozenset(
        "over time,over the years,over the months,over the weeks,over the days,through the years,"
        "across the years,across years,trend,trends,trending,timeline,history,historical,evolution,"
        "evolved,changed,change over,time series,over the period,year over year,month over month".split(",")
    ),
    share_cues=frozenset(
        "share,shares,proportion,proportions,percentage,percentages,fraction,composition,breakdown,"
        "split of,part of,parts of".split(",")
    ),
    relation_cues=frozenset(
        "relationship,relation,correlation,correlate,correlated,versus,vs,against,compared to".split(",")
    ),
    grains=_pairs(
        "daily=day, by day=day, per day=day, each day=day, weekly=week, by week=week, per week=week,"
        "monthly=month, by month=month, per month=month, each month=month, quarterly=quarter,"
        "by quarter=quarter, per quarter=quarter, yearly=year, annual=year, annually=year, by year=year,"
        "per year=year, each year=year, by weekday=weekday, weekday=weekday, day of the week=weekday,"
        "each day of the week=weekday, by day of the week=weekday, per day of the week=weekday,"
        "day of week=weekday, weekdays=weekday"
    ),
    number_words={
        w: i
        for i, w in enumerate(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
            "fifteen sixteen seventeen eighteen nineteen twenty".split()
        )
    },
    negations=frozenset("not,isn't,isnt,other than,except,excluding,apart from,without,besides".split(",")),
    comparators=_pairs(
        "more than=>, greater than=>, higher than=>, larger than=>, bigger than=>, above=>, over=>,"
        "exceeding=>, exceeds=>, older than=>, longer than=>, after=>, at least=>=, no less than=>=,"
        "less than=<, lower than=<, smaller than=<, fewer than=<, below=<, under=<, younger than=<,"
        "shorter than=<, before=<, at most=<=, no more than=<=, equal to==, equals==, is=="
    ),
    synonyms=tuple(
        frozenset(g.split())
        for g in (
            "sex gender",
            "size party",
            "pop population inhabitant people resident",
            "temp temperature",
            "revenue sale income turnover",
            "price cost",
            "country nation nationality origin",
            "stock inventory onhand instock",
            "quantity qty unit volume piece",
            "order purchase transaction",
            "product item good sku article",
            "user customer client member account buyer subscriber",
            "session visit engagement activity usage event",
            "supplier vendor",
            "warehouse location site store branch",
            "region area territory market zone",
            "status state stage",
            "plan tier subscription package",
            "discount promo markdown rebate",
            "signup registration",
            "profit margin",
            "city town",
            "age old",
            "salary pay wage",
            "employee staff worker",
            "department dept",
            "category type kind genre",
            "name title",
            "length long duration",
            "rating score",
            "number count",
            "description detail",
            "year season",
        )
    ),
    code_words=_pairs(
        "female=F|Female|Woman|Women, male=M|Male|Man|Men, women=F|Female|Woman|Women,"
        "men=M|Male|Man|Men, woman=F|Female|Woman, man=M|Male|Man, girls=F|Female|Girl,"
        "boys=M|Male|Boy, yes=Y, no=N, true=T, false=F"
    ),
    day_names=("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    weekend=("saturday", "sunday"),
    demonym_endings=("ese", "ian", "ish", "an", "n", "i"),
    stopwords=frozenset(
        """a an the of to in on at for from with and or is are was were be been do does did have has had
        i me my we our us you your it its this that these those there here what which who whom whose when
        where why how can could would should will please show give get tell let see find display view make
        create want need like know about into than then so as all any some only just also very much more
        less return draw plot visualize visualise chart graph bar pie scatter line histogram using use via
        them they their him her his she he list listing each every per by one ones corresponding along
        kind kinds sort sorts
        together together correspond corresponds respective respectively whole entire overall""".split()
    ),
    function_words=frozenset(
        """number count total sum average avg mean maximum minimum max min many much id ids value
        values""".split()
    ),
)
