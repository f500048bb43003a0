"""The names an expression may read, and the caps on compiling and evaluating one."""

NAMES = ("inputs", "steps", "item", "run")

MAX_LENGTH = 2_000  # characters of one expression
MAX_DEPTH = 60  # levels of the collapsed tree; at most 6 Python frames each: 360 of the default limit of 1,000
MAX_COST = 100_000  # tree nodes visited, plus MACRO_ITEM_COST for each item a macro walks
MACRO_ITEM_COST = 40  # a macro's item costs celpy a new scope: about forty plain nodes' worth
TIME_LIMIT = 0.5  # seconds; the backstop behind MAX_COST, which a 1,000-item map with a small body stays under
MAX_RESULT_ITEMS = 100_000  # list elements and map entries in what one call gives
MAX_RESULT_CHARS = 10_000_000  # characters of text in what one call gives
