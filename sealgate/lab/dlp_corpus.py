"""A labelled corpus of realistic emails for measuring the DLP detectors.

The generator is written independently of `sealgate.dlp` so that it can judge it: every
identifier it plants is built and checked with python-stdnum (or the few lines of own
check-digit code below where stdnum has none), and its exact span is recorded.

- `Sample.labels` are identifiers a sound detector must report at confidence medium or
  higher, with the type named in the label.
- `Sample.traps` document look-alikes (phone numbers, ZIP+4, order numbers, IMEIs,
  tracking numbers, ISBNs, invalid SSNs, ITINs as SSNs, ...) that must not be reported at
  medium or higher for any DLP type. Anything else unlabelled must not be either; the
  traps are the places where that is hardest.

`generate()` builds the samples, `corpus_text()` concatenates them for a throughput
benchmark, and `score()` computes per-type precision and recall of a scanner at medium.
Run `python -m sealgate.lab.dlp_corpus` for the table of `sealgate.dlp.scan_text`.

A label of a keyword-driven type has its keyword at most 40 characters before it (or, for
SSN, ABA routing number and passport, sometimes up to 20 after it). Every sample passes a
fairness check before it is kept:

- no string of a keyword-driven type's shape (and check digits, where it has them) that
  is not labelled with that type starts within 64 characters after one of that type's
  keywords (32 for a bank account number, which comes right after its keyword), or ends
  within 32 before one for the types whose keyword may follow; so a detector is never
  asked to tell two keyword-driven types apart by anything but the keyword, with a margin
  for windows a little wider than 40;
- no label sits within 40 characters of order/invoice/confirmation/tracking/IMEI/ISBN/
  ticket wording (where a detector is expected to lower its confidence);
- no card-, SSN/ITIN- or DEA-shaped string passes its checks by accident outside a label
  or a trap. (A Luhn-valid card-shaped run of digits can occur inside an IBAN; it is not
  a card: it is marked as a CARD_IN_IBAN trap, and a card finding there counts as a
  CREDIT_CARD false positive.)
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from stdnum import ean, iban, isbn, luhn
from stdnum.es import ccc
from stdnum.iso7064 import mod_97_10
from stdnum.us import rtn, ssn

__all__ = [
    "LABEL_TYPES",
    "TRAP_KINDS",
    "Label",
    "Sample",
    "corpus_text",
    "generate",
    "main",
    "score",
    "trap_report",
    "valid_label",
]


@dataclass(frozen=True)
class Label:
    """A span of a sample's text: `text[start:end] == value`."""

    type: str
    start: int
    end: int
    value: str


@dataclass(frozen=True)
class Sample:
    """One email body. `labels` must be found (at medium or higher, with that type);
    `traps` (type = the trap kind) must not be reported at medium or higher."""

    text: str
    labels: tuple[Label, ...]
    traps: tuple[Label, ...]


class _Finding(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def confidence(self) -> str: ...


Scanner = Callable[[str], Iterable[_Finding]]

LABEL_TYPES: tuple[str, ...] = (
    "US_SSN",
    "US_ITIN",
    "CREDIT_CARD",
    "ABA_ROUTING_NUMBER",
    "IBAN_CODE",
    "US_BANK_NUMBER",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_NPI",
    "US_DEA_NUMBER",
    "ICD10_CODE",
    "MEDICAL_RECORD_NUMBER",
    "DATE_OF_BIRTH",
)

TRAP_KINDS: tuple[str, ...] = (
    "ITIN_AS_SSN",  # a valid ITIN (also labelled US_ITIN): must not be a US_SSN
    "INVALID_SSN",  # area 000/666/9xx (non-ITIN group), group 00, serial 0000, known fakes
    "ZIP_PLUS_4",
    "PHONE",
    "DATE",  # a date that is not a date of birth
    "TIME",
    "MEETING_ID",
    "ORDER_NUMBER",
    "INVOICE_NUMBER",
    "PO_NUMBER",
    "LUHN_ORDER_NUMBER",  # 16 Luhn-valid digits after "order number", "invoice", ...
    "IMEI",
    "TRACKING_NUMBER",
    "ISBN",
    "GUID",
    "VERSION",
    "KB_ARTICLE",  # KB5034441: two letters and seven digits, failing the DEA check
    "LUHN_INVALID_CARD",
    "CARD_TEST_SEQUENCE",  # 1234 5678 9012 3456, 0000 0000 0000 0000
    "INVALID_IBAN",  # right shape, fails mod 97
    "CARD_IN_IBAN",  # a Luhn-valid card-shaped run of digits inside an IBAN (or IBAN trap)
    "INVALID_ROUTING",  # 9 digits after "routing" failing the ABA checksum or prefix
    "BARE_ROUTING",  # a valid ABA number with no keyword near: low at most
    "INVALID_DEA",  # DEA-shaped, wrong check digit
    "URL_NUMBER",  # long numbers in links, some of them Luhn-valid with a card prefix
    "TICKET_ID",
)

# ---------------------------------------------------------------------------------------
# Check digits and validity (stdnum where it has them)

_ABA_PREFIXES = frozenset([*range(0, 13), *range(21, 33), *range(61, 73), 80])
_DEA_FIRST = "ABCDEFGHJKLMPRSTUX"
_ITIN_GROUPS = tuple([*range(50, 66), *range(70, 89), *range(90, 93), *range(94, 100)])

_CARD_BRANDS: tuple[tuple[str, tuple[tuple[int, int], ...], tuple[int, ...]], ...] = (
    ("Visa", ((4, 4),), (16, 16, 16, 16, 13, 19)),
    ("Mastercard", ((51, 55), (2221, 2720)), (16,)),
    ("American Express", ((34, 34), (37, 37)), (15,)),
    ("Discover", ((6011, 6011), (65, 65), (644, 649)), (16, 16, 19)),
    ("JCB", ((3528, 3589),), (16, 16, 17, 18, 19)),
    ("Diners Club", ((36, 36), (38, 38), (300, 305)), (14,)),
    ("UnionPay", ((62, 62),), (16, 16, 17, 18, 19)),
    ("Maestro", ((5018, 5018), (5020, 5020), (5038, 5038), (5893, 5893), (6304, 6304),
                 (6759, 6759), (6761, 6763)), (16, 19)),
)


def _card_prefix(digits: str) -> bool:
    for _name, ranges, _lengths in _CARD_BRANDS:
        for lo, hi in ranges:
            width = len(str(lo))
            if len(digits) >= width and lo <= int(digits[:width]) <= hi:
                return True
    return False


def _card_like(digits: str) -> bool:
    """Would a card detector be right to call this a card number?"""
    return (digits.isdigit() and 12 <= len(digits) <= 19 and _card_prefix(digits)
            and luhn.is_valid(digits))


def _aba_ok(digits: str) -> bool:
    return (len(digits) == 9 and digits.isdigit() and rtn.is_valid(digits)
            and int(digits[:2]) in _ABA_PREFIXES)


def _npi_ok(digits: str) -> bool:
    return len(digits) == 10 and digits.isdigit() and digits[0] in "12" and luhn.is_valid(
        "80840" + digits)


def _dea_check(six: str) -> str:
    d = [int(ch) for ch in six]
    return str((d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10)


def _dea_ok(value: str) -> bool:
    return (len(value) == 9 and value[0] in _DEA_FIRST and value[1].isalpha()
            and value[1].isupper() and value[2:].isdigit() and _dea_check(value[2:8]) == value[8])


def _itin_ok(digits: str) -> bool:
    """IRS rule: 9XX-GG-XXXX with GG in 50-65, 70-88, 90-92, 94-99. (stdnum.us.itin still
    knows only 70-99 without 89 and 93, so it rejects the 50-65 range issued since 2011.)"""
    return (len(digits) == 9 and digits.isdigit() and digits[0] == "9"
            and int(digits[3:5]) in _ITIN_GROUPS)


def _ssn_ok(digits: str) -> bool:
    return len(digits) == 9 and digits.isdigit() and ssn.is_valid(digits)


def _compact(value: str) -> str:
    return re.sub(r"[\s./-]", "", value)


_ICD_RE = re.compile(r"[A-TV-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?")
_DL_RE = re.compile(r"[A-Z]\d{7}|\d{8,9}|[A-Z]\d{11,12}")
_DATE_RE = re.compile(
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}, \d{4}"
    r"|\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{4}"
    r"|\d{1,2}/\d{1,2}/\d{2,4}|\d{4}-\d{2}-\d{2}")


def valid_label(label: Label) -> bool:
    """Whether a label's value passes the check that applies to its type (shape only for
    the types without check digits). Used by the tests; handy for a detector's author."""
    v, c = label.value, _compact(label.value)
    checks: dict[str, Callable[[], bool]] = {
        "US_SSN": lambda: _ssn_ok(c),
        "US_ITIN": lambda: _itin_ok(c),
        "CREDIT_CARD": lambda: _card_like(c),
        "ABA_ROUTING_NUMBER": lambda: _aba_ok(c),
        "IBAN_CODE": lambda: iban.is_valid(c),
        "US_BANK_NUMBER": lambda: c.isdigit() and 8 <= len(c) <= 17,
        "US_PASSPORT": lambda: re.fullmatch(r"\d{9}|[A-Z]\d{8}", c) is not None,
        "US_DRIVER_LICENSE": lambda: _DL_RE.fullmatch(c) is not None,
        "US_NPI": lambda: _npi_ok(c),
        "US_DEA_NUMBER": lambda: _dea_ok(c),
        "ICD10_CODE": lambda: _ICD_RE.fullmatch(v) is not None,
        "MEDICAL_RECORD_NUMBER": lambda: re.fullmatch(r"(?:MRN)?\d{6,10}", c) is not None,
        "DATE_OF_BIRTH": lambda: _DATE_RE.fullmatch(v) is not None,
    }
    return checks[label.type]()


# ---------------------------------------------------------------------------------------
# Text with spans


class _Text:
    """Text built piece by piece, recording the span of every label and trap."""

    __slots__ = ("labels", "parts", "size", "traps")

    def __init__(self, *chunks: str) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.labels: list[Label] = []
        self.traps: list[Label] = []
        self.add(*chunks)

    def add(self, *chunks: str) -> _Text:
        for chunk in chunks:
            self.parts.append(chunk)
            self.size += len(chunk)
        return self

    def label(self, type_: str, value: str) -> _Text:
        self.labels.append(Label(type_, self.size, self.size + len(value), value))
        return self.add(value)

    def trap(self, kind: str, value: str) -> _Text:
        self.traps.append(Label(kind, self.size, self.size + len(value), value))
        return self.add(value)

    def rstrip(self) -> _Text:
        """Drop trailing newlines (never part of a span)."""
        s = self.text().rstrip("\n")
        self.parts, self.size = [s], len(s)
        return self

    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def extend(self, other: _Text, prefix: str = "") -> _Text:
        """Append `other`, each of its lines prefixed with `prefix` (a quote marker)."""
        body = other.text()
        base = self.size
        if not prefix:
            self.add(body)
            self.labels += [_shift(x, lambda o: base + o) for x in other.labels]
            self.traps += [_shift(x, lambda o: base + o) for x in other.traps]
            return self
        old_starts: list[int] = []
        new_starts: list[int] = []
        out: list[str] = []
        old = new = 0
        bare = prefix.rstrip()
        for line in body.split("\n"):
            mark = prefix if line else bare
            old_starts.append(old)
            new_starts.append(base + new + len(mark))
            out.append(mark + line)
            old += len(line) + 1
            new += len(mark) + len(line) + 1

        def move(offset: int) -> int:
            k = bisect.bisect_right(old_starts, offset) - 1
            return new_starts[k] + offset - old_starts[k]

        self.add("\n".join(out))
        self.labels += [_shift(x, move) for x in other.labels]
        self.traps += [_shift(x, move) for x in other.traps]
        return self


def _shift(x: Label, move: Callable[[int], int]) -> Label:
    start = move(x.start)
    return Label(x.type, start, start + len(x.value), x.value)


def _wrap(t: _Text, width: int) -> _Text:
    """Hard-wrap a one-paragraph fragment at `width`, never inside a label or trap.
    A space becomes a newline, so no offset moves."""
    s = t.text()
    if len(s) <= width or "\n" in s:
        return t
    spans = [(x.start, x.end) for x in (*t.labels, *t.traps)]
    spaces = [m.start() for m in re.finditer(" ", s)
              if not any(a <= m.start() < b for a, b in spans)]
    breaks: list[int] = []
    line_start, last = 0, -1
    for p in spaces:
        if p - line_start > width and last > line_start:
            breaks.append(last)
            line_start = last + 1
        last = p
    if len(s) - line_start > width and last > line_start:
        breaks.append(last)
    if breaks:
        chars = list(s)
        for p in breaks:
            chars[p] = "\n"
        t.parts = ["".join(chars)]
    return t


# ---------------------------------------------------------------------------------------
# Word lists

def _words(s: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in s.split("|") if w.strip())


_FIRST = _words(
    "James|Mary|Robert|Patricia|John|Jennifer|Michael|Linda|David|Elizabeth|William|"
    "Barbara|Richard|Susan|Joseph|Jessica|Thomas|Sarah|Charles|Karen|Christopher|Lisa|"
    "Daniel|Nancy|Matthew|Betty|Anthony|Sandra|Mark|Ashley|Donald|Kimberly|Steven|Emily|"
    "Paul|Donna|Andrew|Michelle|Joshua|Carol|Kevin|Melissa|Brian|Deborah|Timothy|Rebecca|"
    "Jason|Laura|Edward|Cynthia|Priya|Wei|Mohammed|Fatima|Carlos|Sofia|Hiroshi|Aisha|Olga|"
    "Mateo|Chloe|Raj|Ngozi|José|Zoë|Renée|Björn|Dana|Morgan|Jordan|Alexis|Tanya|Grace")
_LAST = _words(
    "Smith|Johnson|Williams|Brown|Jones|Garcia|Miller|Davis|Rodriguez|Martinez|Hernandez|"
    "Lopez|Gonzalez|Wilson|Anderson|Thomas|Taylor|Moore|Jackson|Martin|Lee|Perez|Thompson|"
    "White|Harris|Sanchez|Clark|Ramirez|Lewis|Robinson|Walker|Young|Allen|King|Wright|"
    "Scott|Torres|Nguyen|Hill|Flores|Green|Adams|Nelson|Baker|Hall|Rivera|Campbell|"
    "Mitchell|Carter|Roberts|Patel|Kim|Chen|Okafor|Schmidt|Kowalski|O'Brien|Fitzgerald|"
    "Nakamura|Haddad|Novak|Müller|Peña|Duarte|Lindqvist|Brennan|Osei|Iyer|Moreau")

_ORGS: dict[str, tuple[str, ...]] = {
    "business": _words("Brightline Consulting|Northwind Traders|Contoso Ltd|Fabrikam Inc|"
                       "Blue Heron Design|Tailspin Toys|Acme Logistics|Wide World Importers|"
                       "Granite Peak Partners|Lakeside Manufacturing"),
    "healthcare": _words("Riverside Family Medicine|Lakeshore Orthopedics|North Valley Health|"
                         "St. Brigid Medical Center|Cedar Park Pediatrics|Harborview Cardiology|"
                         "Summit Behavioral Health|Pinecrest Dermatology"),
    "school": _words("Maple Grove Elementary|Westbrook High School|Lincoln Unified School "
                     "District|Northfield Community College|Hillcrest Middle School|"
                     "Bayside Academy"),
    "bank": _words("First Harbor Bank|Granite Trust Credit Union|Summit Federal Savings|"
                   "Bayview Title & Escrow|Keystone Community Bank|Meridian Wealth Partners"),
    "it": _words("Contoso IT Services|Fabrikam Service Desk|Northwind Managed IT|"
                 "Brightline Technology Group|Alpine Network Solutions"),
    "retail": _words("Outdoor Supply Co.|Harbor Books|Pine & Oak Furniture|Copper Kettle "
                     "Kitchenware|Trailhead Outfitters|Lumen Home Goods"),
    "hr": _words("Brightline Consulting|Northwind Traders|Lakeside Manufacturing|"
                 "Granite Peak Partners|Acme Logistics|Meridian Staffing"),
    "library": _words("Eastside Public Library|Northfield College Library|Harbor Books|"
                      "Westbrook High School Library|Riverbend Reading Room"),
}
_THEMES = tuple(_ORGS)
_THEME_WEIGHTS = {"business": 1.0, "healthcare": 1.6, "school": 1.0, "bank": 1.4, "it": 0.8,
                  "retail": 0.8, "hr": 1.2, "library": 0.5}

_TITLES: dict[str, tuple[str, ...]] = {
    "business": _words("Senior Account Manager|Director of Operations|Project Manager|"
                       "Controller|Procurement Lead|Business Analyst|Chief of Staff"),
    "healthcare": _words("Practice Manager|Registered Nurse|Billing Specialist|"
                         "Referral Coordinator|Medical Assistant|Physician Assistant"),
    "school": _words("Principal|Registrar|Financial Aid Counselor|School Nurse|"
                     "4th Grade Teacher|Front Office Coordinator"),
    "bank": _words("Loan Officer|Escrow Officer|Relationship Manager|Treasury Analyst|"
                   "Branch Manager|Wire Operations Specialist"),
    "it": _words("IT Support Analyst|Systems Administrator|Service Desk Lead|"
                 "Network Engineer|Endpoint Engineer"),
    "retail": _words("Customer Service Representative|Store Manager|Fulfillment Lead|"
                     "Customer Care Specialist"),
    "hr": _words("HR Generalist|Payroll Specialist|Talent Acquisition Partner|"
                 "Benefits Administrator|People Operations Manager"),
    "library": _words("Reference Librarian|Circulation Supervisor|Collections Librarian|"
                      "Library Assistant"),
}

_CITIES = (
    ("Cambridge", "MA", "021"), ("Boston", "MA", "021"), ("Austin", "TX", "787"),
    ("Denver", "CO", "802"), ("Seattle", "WA", "981"), ("Chicago", "IL", "606"),
    ("Portland", "OR", "972"), ("Columbus", "OH", "432"), ("Raleigh", "NC", "276"),
    ("San Diego", "CA", "921"), ("Minneapolis", "MN", "554"), ("Atlanta", "GA", "303"),
    ("Nashville", "TN", "372"), ("Phoenix", "AZ", "850"), ("Madison", "WI", "537"),
    ("Albany", "NY", "122"), ("Burlington", "VT", "054"), ("Springfield", "IL", "627"),
    ("Tampa", "FL", "336"), ("Sacramento", "CA", "958"),
)
_STREETS = _words("Main Street|Oak Avenue|Maple Drive|Washington Street|Elm Street|"
                  "Park Avenue|Lakeview Road|Commerce Way|Industrial Parkway|River Road|"
                  "Massachusetts Avenue|Broadway|Cedar Lane|Harbor Boulevard|Hillside Drive")
_AREA_CODES = _words("617|212|415|312|202|303|206|512|404|615|602|608|518|802|813|916|"
                     "503|614|919|619|612|781|646|718|972")
_DEPTS = _words("Finance|Operations|Legal|Marketing|Facilities|Procurement|Human Resources|"
                "IT|Customer Success|Compliance|Sales|Accounts Payable")
_PROJECTS = _words("Phoenix|Atlas|Q3 migration|website refresh|vendor onboarding|"
                   "warehouse expansion|annual audit|CRM rollout|office move|Northstar")
_DOCS = _words("proposal|draft agreement|budget spreadsheet|slide deck|statement of work|"
               "status report|meeting notes|renewal quote|vendor questionnaire|project plan")
_TOPICS = _words("the renewal|travel policy|the Q2 forecast|headcount planning|the pilot|"
                 "vendor pricing|the holiday schedule|the audit findings|the new workflow")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_PRODUCTS = _words("Stainless Steel Water Bottle|Merino Wool Socks (3-pack)|Cast Iron "
                   "Skillet 10in|LED Desk Lamp|Ergonomic Office Chair|Wireless Keyboard|"
                   "Trail Running Shoes|Insulated Jacket|Ceramic Mug Set|Hiking Daypack 22L|"
                   "USB-C Docking Station|Noise-Cancelling Headphones|Bamboo Cutting Board")
_DRUGS = _words("metformin|lisinopril|atorvastatin|levothyroxine|albuterol|sertraline|"
                "amlodipine|omeprazole|gabapentin|losartan")
_LABS = _words("A1c|TSH|LDL|creatinine|CBC|ferritin|vitamin D|potassium")
_SPECIALTIES = _words("cardiology|endocrinology|physical therapy|dermatology|orthopedics|"
                      "neurology|gastroenterology|behavioral health")
_SUBJECTS = _words("math|science|reading|social studies|art|music|Spanish|history")
_PLACES = _words("science museum|aquarium|state capitol|nature center|planetarium|"
                 "history museum|botanical garden")
_BANKS_US = _words("Chase|Bank of America|Wells Fargo|Citibank|US Bank|PNC Bank|Truist|"
                   "TD Bank|Capital One|First Harbor Bank|Keystone Community Bank")
_BOOKS = _words("The Quiet Harbor|A Short History of Bridges|Patterns of Light|"
                "The Cartographer's Daughter|Understanding Statistics|Notes on Teaching|"
                "The Long Field|Principles of Accounting|Small Gods of the River|"
                "Introduction to Public Health|The Salt Road|Writing for Busy Readers")
_COURSES = _words("ENG 201|HIST 110|Biology 1B|the 8th grade book club|PSY 240|"
                  "the summer reading program|BUS 305")
_GRADES = _words("3rd grade|4th grade|5th grade|6th grade|7th grade")
_DEVICES = _words("iPhone 15|iPhone 14|Galaxy S23|Pixel 8|Galaxy A54|iPhone SE")

_ICD10 = (
    ("E11.9", "type 2 diabetes without complications"), ("I10", "essential hypertension"),
    ("J45.909", "unspecified asthma, uncomplicated"), ("S72.001A", "fracture of right femur"),
    ("Z79.4", "long-term use of insulin"), ("E78.5", "hyperlipidemia"),
    ("F41.1", "generalized anxiety disorder"), ("F32.9", "major depressive disorder"),
    ("M54.50", "low back pain"), ("K21.9", "GERD without esophagitis"),
    ("N39.0", "urinary tract infection"), ("J06.9", "acute upper respiratory infection"),
    ("E66.9", "obesity, unspecified"), ("G43.909", "migraine, unspecified"),
    ("I25.10", "coronary artery disease"), ("Z00.00", "routine adult exam"),
    ("J44.9", "COPD, unspecified"), ("E03.9", "hypothyroidism"),
    ("M17.11", "primary osteoarthritis, right knee"), ("R10.9", "abdominal pain"),
    ("L40.0", "psoriasis vulgaris"), ("H52.13", "myopia, bilateral"),
    ("E55.9", "vitamin D deficiency"), ("R51.9", "headache"), ("Z23", "encounter for immunization"),
    ("F90.0", "ADHD, inattentive type"), ("J30.9", "allergic rhinitis"),
    ("M25.561", "pain in right knee"), ("I48.91", "atrial fibrillation"),
    ("N18.3", "chronic kidney disease, stage 3"), ("K58.9", "irritable bowel syndrome"),
    ("S93.401A", "sprain of right ankle"), ("O24.419", "gestational diabetes"),
)

# ---------------------------------------------------------------------------------------
# Sentence templates. `{name}` slots are filled at random; `{v}` is the planted value.

_PROSE: dict[str, tuple[str, ...]] = {
    "general": (
        "I know things are hectic right now, so no rush on this.",
        "Let me know what works best for you.",
        "I appreciate you flagging this so quickly.",
        "Sorry for the back and forth on this one.",
        "Thanks for the quick turnaround on this.",
        "Let me know if you have any questions.",
        "Happy to jump on a call if it is easier to walk through it together.",
        "Apologies for the delay in getting back to you; it has been a busy week here.",
        "I will circle back once I hear from {first}.",
        "Please let me know if {weekday} afternoon works for a quick call.",
        "I have copied {first} so that everyone is on the same page.",
        "Hope you had a good weekend.",
        "Just following up on my note from last {weekday}.",
        "Thanks again for your patience while we sorted this out.",
        "If anything looks off, reply here and I will fix it right away.",
        "I am out of the office {weekday} but will check email in the evening.",
        "Could you confirm once you have had a chance to review?",
        "We can revisit this at the next check-in if needed.",
    ),
    "business": (
        "Can we push the {project} review to {weekday}? Two of the leads are traveling.",
        "The client signed off on phase one, so we can start billing next month.",
        "I attached the redlined {doc}; most of the changes are in the payment terms.",
        "{first} asked whether we can bring the go-live date forward by a week.",
        "We are running about {n} days behind on {project}, mostly because of vendor delays.",
        "Facilities confirmed the new space will be ready by the end of the quarter.",
        "I am going to share the draft with the wider team on {weekday} unless you object.",
        "Let's use the same template as last quarter so the numbers are comparable.",
        "The vendor came back with a revised quote that is about {n} percent lower.",
        "We still need a decision on {topic} before we can finalize the plan.",
        "{first} and I went through the open items and closed out most of them.",
        "I spoke with {first} from {dept} this morning and they are on board with the timeline.",
        "Could you take a look at the attached {doc} and let me know if anything looks off?",
        "We are still waiting on sign-off from {dept} before we can move forward.",
        "As discussed on {weekday}, the {project} launch will slip by about {n} weeks.",
        "Please keep {first} in the loop on anything related to {topic}.",
        "I have updated the shared folder with the latest {doc}.",
        "The budget for {project} came in at {amount}, slightly under what we forecast.",
        "Just a reminder that the {doc} is due by end of day {weekday}.",
        "Our {dept} team flagged a few items in the {doc} that need attention.",
        "We agreed to revisit {topic} at the next quarterly review.",
        "{first} will send the revised {doc} to the client by {weekday}.",
        "The steering committee asked for a one-page summary of {project} before the board "
        "meeting.",
        "Legal has a few comments on the indemnification language in section {n}.",
        "We should have the final numbers from {dept} by the middle of next week.",
    ),
    "healthcare": (
        "Her blood pressure has been better controlled since the dose was adjusted.",
        "Please fax the signed requisition to the lab so they can draw on {weekday}.",
        "We received a records request from the patient's new provider and will send them "
        "once the release is signed.",
        "The home health agency will start visits next week.",
        "He is due for his annual wellness visit and flu shot.",
        "Please remind the family to bring the current medication list to the appointment.",
        "The surgical consult is scheduled for next {weekday} morning.",
        "Insurance denied the first request, so we filed an appeal with the clinical notes.",
        "Dr. {last} would like to see her back sooner if the symptoms return.",
        "The MRI report is attached; there were no acute findings.",
        "Please call the patient to go over the results before Friday.",
        "The patient was seen in clinic on {weekday} for a follow-up visit.",
        "Labs from the last visit were within normal limits except for a mildly elevated {lab}.",
        "Please schedule a follow-up in {n} weeks and repeat the {lab} before that visit.",
        "Dr. {last} has reviewed the imaging and recommends a short course of {specialty}.",
        "Prior authorization for {drug} was submitted to the insurer yesterday.",
        "The referral to {specialty} has been faxed over, and their office will call to "
        "schedule.",
        "She tolerated the medication change well and reports improved sleep.",
        "Please see the attached visit summary and medication reconciliation.",
        "We will need updated insurance information before the next appointment.",
        "The pharmacy called about a refill request for {drug}; please advise.",
        "Vitals were stable and he denies chest pain or shortness of breath.",
        "The care team will discuss the plan at Thursday's huddle.",
        "Records from the outside hospital arrived this morning and have been scanned in.",
    ),
    "school": (
        "The spring concert will be held in the gym at 6:30 PM.",
        "Please pack a lunch and a water bottle for the trip.",
        "{first} will need to make up the {subject} quiz from last week.",
        "The library is collecting gently used books for the spring swap.",
        "Early dismissal is scheduled for next {weekday} for staff training.",
        "Please update your emergency contacts in the parent portal.",
        "Chromebooks must be returned to the media center before summer break.",
        "Tutoring is available in room 112 on Tuesdays and Thursdays after school.",
        "The scholarship committee will review applications at the end of the month.",
        "Transcripts can be requested through the registrar's office.",
        "The {grade} field trip to the {place} is coming up, and permission slips are due "
        "{weekday}.",
        "{first} has been doing great work in {subject} this term.",
        "Parent-teacher conferences will be held in the library after dismissal.",
        "Please remember to return the signed forms to the front office.",
        "Our financial aid office needs a few more documents to finish the application.",
        "The enrollment packet includes the immunization record and proof of residence.",
        "Picture day has been moved to next {weekday} because of the assembly.",
        "The nurse's office will send home a reminder about the updated health forms.",
        "We are looking for parent volunteers to help with the book fair.",
        "Report cards will be available in the parent portal at the end of the month.",
        "The bus schedule for the {place} trip is attached.",
    ),
    "bank": (
        "The payoff quote is good through the end of the month.",
        "Please bring a government-issued photo ID to the closing.",
        "Our fraud team placed a temporary hold on the card while we verify recent activity.",
        "The rate lock expires in {n} weeks, so we should aim to close before then.",
        "Statements are available online under the Documents tab.",
        "The beneficiary bank may charge an incoming wire fee.",
        "We have updated the signers on the business profile as requested.",
        "Please review the attached fee schedule before you sign.",
        "Mobile deposits made after 8 PM are credited the next business day.",
        "Your wire request has been received and is pending verification.",
        "For security reasons, please confirm the instructions by phone before we release "
        "the funds.",
        "The closing is scheduled for {weekday}, and the title company needs the funds a "
        "day before.",
        "We noticed a change in the payment instructions and wanted to double-check with you.",
        "The loan documents are attached for your review and signature.",
        "Our treasury team processes outgoing wires until 3 PM Eastern on business days.",
        "The appraisal came back at {amount}, which supports the requested loan amount.",
        "Please do not act on payment instructions received by email alone.",
        "Your new debit card should arrive within {n} business days.",
        "The escrow balance will be reconciled after the final disbursement.",
        "We have received the signed disclosure and will send the closing figures shortly.",
    ),
    "it": (
        "Your new laptop is ready for pickup at the service desk.",
        "We are migrating the file shares to SharePoint over the weekend.",
        "Please update your password before it expires on {weekday}.",
        "The conference room display is fixed; it was a loose HDMI cable.",
        "I added you to the distribution list for the {dept} team.",
        "The certificate on the intranet site was renewed this morning.",
        "Remote access will be unavailable during the maintenance window on Saturday night.",
        "Please submit a request through the portal so we can follow the work there.",
        "The laptop was reimaged and the user profile restored from backup.",
        "We rolled out the patch to the pilot group yesterday without any issues.",
        "Please reboot when convenient so the update can finish installing.",
        "The VPN client keeps dropping the connection every few minutes.",
        "I have escalated this to the network team for further investigation.",
        "The shared mailbox permissions have been updated; it may take an hour to sync.",
        "MFA enrollment is required for all staff by the end of the month.",
        "The printer on the third floor is back online after the driver update.",
        "We are seeing intermittent DNS timeouts from the branch office.",
        "The backup job completed with warnings; I am looking at the log now.",
        "Please do not click links in the message you reported; we have blocked the sender.",
    ),
    "retail": (
        "Our team double-checks every package before it leaves the warehouse.",
        "Gift receipts are included when you select the gift option at checkout.",
        "The {product} you asked about is back in stock in most sizes.",
        "We are sorry the item arrived damaged; a replacement is on the way.",
        "You can update your delivery preferences in your profile.",
        "Store pickup is available at most locations within two hours.",
        "Thanks for shopping with us!",
        "Your items are being prepared and will be on their way shortly.",
        "If you need to make changes, please contact customer care within 24 hours.",
        "Returns are free within {n}0 days of delivery.",
        "We have restocked the {product}, so your backordered item will ship this week.",
        "Our customer care team is available seven days a week.",
        "Please allow {n} to {n} business days for the refund to appear on your statement.",
        "Members earn double points on purchases this weekend.",
    ),
    "hr": (
        "Your first paycheck will include a prorated amount for the partial period.",
        "Please select your health plan before the enrollment deadline.",
        "The parking permit application is on the intranet under Facilities.",
        "We will schedule your orientation session for the first week.",
        "IT will ship your laptop so it arrives before your start date.",
        "Remember to submit your timesheet by noon on Friday.",
        "Welcome aboard! We are excited to have you join the {dept} team.",
        "Please complete the onboarding forms in the HR portal before your first day.",
        "Benefits enrollment closes {n}0 days after your start date.",
        "Payroll runs on the 15th and the last business day of each month.",
        "Your manager, {first}, will meet you at reception on your first morning.",
        "The employee handbook is attached; please sign the acknowledgment page.",
        "Open enrollment starts next {weekday} and runs for two weeks.",
        "Please bring your original documents for the I-9 verification.",
        "The background check vendor will reach out to you directly.",
    ),
    "library": (
        "The study rooms can now be reserved online up to a week in advance.",
        "We are extending hours during finals week.",
        "Your hold is ready for pickup at the main branch and will be kept for seven days.",
        "The book sale raised enough to fund the new children's collection.",
        "Please let us know if you would like these titles added to next term's reserve "
        "list.",
        "The library has copies on reserve at the circulation desk.",
        "E-book versions are available through the digital collection.",
        "Please return overdue items by {weekday} to avoid a hold on your account.",
        "The reading group meets on the first {weekday} of the month.",
        "Interlibrary loan requests usually take about {n} business days.",
        "We have added a few new titles to the reserve list this term.",
    ),
}
_PROSE["hr"] += _PROSE["business"][:4]
_PROSE["retail"] += _PROSE["business"][8:10]

_OPENERS = ("Also, ", "Quick note: ", "As a heads-up, ", "On a separate note, ", "FYI, ",
            "Separately, ", "In the meantime, ", "One more thing: ", "Just so you know, ")
_LOWERABLE = frozenset(("The", "We", "Please", "Our", "Your", "She", "He", "Labs", "Vitals",
                        "Records", "Returns", "Payroll", "Benefits", "Report", "Picture",
                        "Insurance", "Statements", "Remote", "Tutoring", "Transcripts"))

_SUBJECT_LINES: dict[str, tuple[str, ...]] = {
    "business": _words("Q3 planning|{project} update|Contract review|Follow-up from "
                       "{weekday}|Revised {doc}|Vendor onboarding"),
    "healthcare": _words("Referral|Patient follow-up|Prior authorization|Lab results|"
                         "Records request|Prescription refill"),
    "school": _words("Field trip|Enrollment paperwork|Financial aid|Conference schedule|"
                     "Health forms"),
    "bank": _words("Wire instructions|Closing documents|Account update|Loan application|"
                   "Payment confirmation"),
    "it": _words("Your ticket has been updated|Laptop replacement|VPN issue|"
                 "Patch Tuesday rollout|New device setup"),
    "retail": _words("Your order|Shipping update|Return request|Backorder notice"),
    "hr": _words("Welcome aboard|Onboarding documents|Payroll setup|Benefits enrollment"),
    "library": _words("Reading list|Course reserves|Book order|Hold available"),
}

_DISCLAIMERS = (
    "CONFIDENTIALITY NOTICE: This email and any attachments are for the sole use of the "
    "intended recipient(s) and may contain confidential and privileged information. Any "
    "unauthorized review, use, disclosure or distribution is prohibited. If you are not the "
    "intended recipient, please contact the sender by reply email and destroy all copies of "
    "the original message.",
    "This message is intended only for the addressee and may contain information that is "
    "privileged, confidential or exempt from disclosure under applicable law. If you have "
    "received it in error, please notify us immediately and delete it. Email transmission "
    "cannot be guaranteed to be secure or error-free.",
    "Please consider the environment before printing this email.",
    "Nothing in this message constitutes a binding offer or acceptance unless expressly "
    "stated. Wire fraud is on the rise: never trust changes to payment instructions sent "
    "by email; always call a known number to verify.",
)
_HIPAA = (
    "HIPAA NOTICE: This message may contain protected health information (PHI) that is "
    "privileged and confidential under federal and state law. If you are not the intended "
    "recipient, you are hereby notified that any review, dissemination, distribution or "
    "copying of this communication is strictly prohibited. Please notify the sender "
    "immediately and destroy all copies."
)


# ---------------------------------------------------------------------------------------
# Random pieces


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n) if n > 0 else ""


def _ascii(name: str) -> str:
    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", name).lower())


def _safe(rng: random.Random, make: Callable[[random.Random], str]) -> str:
    """A number that is neither card-like nor a valid ABA routing number by accident."""
    while True:
        value = make(rng)
        c = re.sub(r"\D", "", value)
        if not _card_like(c) and not _aba_ok(c) and not (
                len(c) == 10 and c[0] in "12" and _npi_ok(c)):
            return value


def _date(rng: random.Random, y0: int, y1: int, workday: bool = False) -> dt.date:
    while True:
        d = dt.date(rng.randint(y0, y1), 1, 1) + dt.timedelta(days=rng.randint(0, 364))
        if not workday or d.weekday() < 5:
            return d


def _fmt_date(d: dt.date, style: int) -> str:
    month, mon = _MONTHS[d.month - 1], _MONTHS[d.month - 1][:3]
    return (
        f"{d.month:02d}/{d.day:02d}/{d.year}",
        f"{d.year}-{d.month:02d}-{d.day:02d}",
        f"{month} {d.day}, {d.year}",
        f"{d.day} {mon} {d.year}",
        f"{d.day} {month} {d.year}",
        f"{mon} {d.day}, {d.year}",
        f"{d.month}/{d.day}/{d.year}",
    )[style]


def _time(rng: random.Random) -> str:
    h, m = rng.randint(7, 17), rng.choice((0, 0, 15, 30, 30, 45))
    if rng.random() < 0.3:
        return f"{h:02d}:{m:02d}"
    return f"{(h - 1) % 12 + 1}:{m:02d} {'AM' if h < 12 else 'PM'}"


def _phone(rng: random.Random) -> str:
    def make(r: random.Random) -> str:
        a, b, c = r.choice(_AREA_CODES), str(r.randint(201, 989)), _digits(r, 4)
        style = r.randrange(9)
        if style == 8:
            return r.choice((
                f"+44 20 7{_digits(r, 3)} {_digits(r, 4)}", f"+49 30 {_digits(r, 7)}",
                f"+33 1 {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)}",
                f"+61 2 {_digits(r, 4)} {_digits(r, 4)}", f"+353 1 {_digits(r, 3)} "
                f"{_digits(r, 4)}", f"+1 {a} {b} {c}"))
        return (f"{a}-{b}-{c}", f"({a}) {b}-{c}", f"+1 {a} {b} {c}", f"{a}.{b}.{c}",
                f"+1-{a}-{b}-{c}", f"1-800-{b}-{c}", f"({a}) {b}-{c} x{r.randint(100, 499)}",
                f"{a} {b} {c}")[style]
    return _safe(rng, make)


def _zip4(rng: random.Random, prefix: str) -> str:
    return f"{prefix}{_digits(rng, 2)}-{_digits(rng, 4)}"


def _ssn_digits(rng: random.Random) -> str:
    while True:
        d = f"{rng.randint(1, 899):03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
        if _ssn_ok(d) and not _aba_ok(d):
            return d


def _itin_digits(rng: random.Random) -> str:
    return f"9{_digits(rng, 2)}{rng.choice(_ITIN_GROUPS):02d}{rng.randint(1, 9999):04d}"


def _fmt_ssn(d: str, sep: str) -> str:
    return f"{d[:3]}{sep}{d[3:5]}{sep}{d[5:]}"


def _card(rng: random.Random) -> tuple[str, str]:
    brand, ranges, lengths = rng.choice(_CARD_BRANDS)
    lo, hi = rng.choice(ranges)
    n = rng.choice(lengths)
    body = str(rng.randint(lo, hi))
    body += _digits(rng, n - 1 - len(body))
    return brand, body + luhn.calc_check_digit(body)


def _fmt_card(rng: random.Random, d: str) -> str:
    style = rng.randrange(5)
    if style == 0:
        return d
    sep = " " if style < 3 else "-"
    if len(d) in (14, 15):  # Diners 4-6-4, Amex 4-6-5
        groups = [d[:4], d[4:10], d[10:]]
    else:
        groups = [d[i:i + 4] for i in range(0, len(d), 4)]
    return sep.join(groups)


def _aba(rng: random.Random) -> str:
    prefixes = [*range(1, 13), *range(21, 33)] * 4 + [*range(61, 73), 80]
    while True:
        body = f"{rng.choice(prefixes):02d}{_digits(rng, 6)}"
        d = body + rtn.calc_check_digit(body)
        if _aba_ok(d):
            return d


def _bank_number(rng: random.Random) -> str:
    def make(r: random.Random) -> str:
        n = r.choice((8, 9, 10, 10, 10, 11, 12, 12, 13, 14, 16, 17))
        return str(r.randint(1, 9)) + _digits(r, n - 1)
    return _safe(rng, make)


_IBAN_BBAN = {
    "DE": "8n10n", "GB": "4a6n8n", "FR": "5n5n11n2n", "ES": "4n4n1n1n10n", "IT": "1a5n5n12n",
    "NL": "4a10n", "BE": "3n7n2n", "CH": "5n12n", "AT": "5n11n", "IE": "4a6n8n",
    "PL": "8n16n", "SE": "3n16n1n", "NO": "4n6n1n", "DK": "4n9n1n", "PT": "4n4n11n2n",
    "SA": "2n18n", "AE": "3n16n", "LU": "3n13n", "FI": "3n11n",
}
_IBAN_BIC = {
    "DE": ("Deutsche Bank", "DEUTDEFF"), "GB": ("Barclays", "BARCGB22"),
    "FR": ("BNP Paribas", "BNPAFRPP"), "ES": ("Santander", "BSCHESMM"),
    "IT": ("Intesa Sanpaolo", "BCITITMM"), "NL": ("ING", "INGBNL2A"),
    "BE": ("BNP Paribas Fortis", "GEBABEBB"), "CH": ("UBS", "UBSWCHZH80A"),
    "AT": ("Erste Bank", "GIBAATWW"), "IE": ("Bank of Ireland", "BOFIIE2D"),
    "PL": ("PKO Bank Polski", "BPKOPLPW"), "SE": ("Nordea", "NDEASESS"),
    "NO": ("DNB", "DNBANOKK"), "DK": ("Danske Bank", "DABADKKK"),
    "PT": ("Millennium bcp", "BCOMPTPL"), "SA": ("Al Rajhi Bank", "RJHISARI"),
    "AE": ("Emirates NBD", "EBILAEAD"), "LU": ("Spuerkeess", "BCEELULL"),
    "FI": ("Nordea", "NDEAFIHH"),
}
_IBAN_BANKS = {"GB": _words("NWBK|BARC|LOYD|HBUK|MIDL"), "NL": _words("ABNA|INGB|RABO|TRIO"),
               "IE": _words("AIBK|BOFI")}


def _iban(rng: random.Random) -> str:
    cc = rng.choice(tuple(_IBAN_BBAN))
    while True:
        bban = ""
        for count, kind in re.findall(r"(\d+)([an])", _IBAN_BBAN[cc]):
            if kind == "a":
                bban += rng.choice(_IBAN_BANKS[cc]) if cc in _IBAN_BANKS else rng.choice(
                    "ABCDEFGHJKLMNPRSTUVWXYZ")
            else:
                bban += _digits(rng, int(count))
        if cc == "BE":  # national check digits: the first ten digits mod 97
            bban = bban[:10] + f"{int(bban[:10]) % 97 or 97:02d}"
        elif cc == "ES":  # the CCC's two check digits
            bban = bban[:8] + ccc.calc_check_digits(bban) + bban[10:]
        number = cc + iban.calc_check_digits(cc + "00" + bban) + bban
        if iban.is_valid(number):
            return number


def _fmt_iban(rng: random.Random, number: str) -> str:
    if rng.random() < 0.35:
        return number
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))


def _npi(rng: random.Random) -> str:
    body = rng.choice("12") + _digits(rng, 8)
    return body + luhn.calc_check_digit("80840" + body)


def _dea(rng: random.Random, surname: str) -> str:
    six = _digits(rng, 6)
    initial = _ascii(surname)[:1].upper() or "X"
    if rng.random() < 0.15:
        initial = rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ")
    return rng.choice(_DEA_FIRST) + initial + six + _dea_check(six)


def _dl(rng: random.Random) -> tuple[str, str]:
    letter = rng.choice("ABCDEFGHIJKLMNOPRSTUVWYZ")
    state = rng.choice(("CA", "NY", "FL", "TX", "IL"))
    if state == "CA":
        return state, letter + _digits(rng, 7)
    if state == "NY":
        return state, _safe(rng, lambda r: str(r.randint(1, 9)) + _digits(r, 8))
    if state == "FL":
        d = _digits(rng, 12)
        return state, f"{letter}{d[:3]}-{d[3:6]}-{d[6:8]}-{d[8:11]}-{d[11]}"
    if state == "TX":
        return state, _safe(rng, lambda r: str(r.randint(1, 4)) + _digits(r, 7))
    d = _digits(rng, 11)
    return state, f"{letter}{d[:3]}-{d[3:7]}-{d[7:]}"


def _passport(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice("ACEFGHKLMNPRSTWXZ") + _digits(rng, 8)
    return _safe(rng, lambda r: str(r.randint(1, 9)) + _digits(r, 8))


def _mrn(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return "MRN-" + _digits(rng, rng.choice((6, 8)))
    return _safe(rng, lambda r: r.choice(("00", "", "1", "4")) + _digits(r, r.randint(6, 8)))


def _imei(rng: random.Random) -> str:
    tac = rng.choice((f"35{rng.randint(0, 27):02d}", "86", "01", "99"))
    body = tac + _digits(rng, 14 - len(tac))
    return body + luhn.calc_check_digit(body)


def _isbn13(rng: random.Random) -> str:
    body = rng.choice(("9780", "9781", "9783", "9798", "97801", "97814"))
    body += _digits(rng, 12 - len(body))
    return body + ean.calc_check_digit(body)


def _guid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    g = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"
    return g.upper() if rng.random() < 0.3 else g


# ---------------------------------------------------------------------------------------
# The composing context


class _Slots(dict[str, str]):
    """format_map mapping: fixed values are stored; anything else is drawn at random."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def __missing__(self, key: str) -> str:
        rng = self.rng
        lists: dict[str, Sequence[str]] = {
            "first": _FIRST, "last": _LAST, "dept": _DEPTS, "project": _PROJECTS,
            "doc": _DOCS, "topic": _TOPICS, "weekday": _WEEKDAYS[:5], "product": _PRODUCTS,
            "drug": _DRUGS, "lab": _LABS, "specialty": _SPECIALTIES, "subject": _SUBJECTS,
            "place": _PLACES, "grade": _GRADES, "bank": _BANKS_US, "device": _DEVICES,
            "course": _COURSES, "book": _BOOKS,
        }
        if key in lists:
            return rng.choice(lists[key])
        if key == "full":
            return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        if key == "n":
            return str(rng.randint(2, 6))
        if key == "amount":
            return f"${rng.randint(1, 480):,}{rng.choice((',000', ',500', ',250'))}"
        if key == "price":
            return f"${rng.randint(4, 249)}.{rng.choice(('99', '00', '49', '95'))}"
        if key == "exp":
            return f"{rng.randint(1, 12):02d}/{rng.randint(26, 31)}"
        if key == "cvv":
            return _digits(rng, 3)
        if key == "state":
            return rng.choice(_CITIES)[1]
        raise KeyError(key)


@dataclass
class _Person:
    first: str
    last: str
    title: str
    org: str
    domain: str

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def email(self) -> str:
        return f"{_ascii(self.first)}.{_ascii(self.last)}@{self.domain}"


class _Ctx:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.theme = rng.choices(_THEMES, weights=[_THEME_WEIGHTS[t] for t in _THEMES])[0]
        self.width = rng.choice((0, 0, 72, 76, 78))
        self.slots = _Slots(rng)
        self.sender = self.person(self.theme)
        self.recipient = self.person(rng.choice((self.theme, self.theme, *_THEMES)))
        self.slots["sender_first"] = self.sender.first
        self.used: set[str] = set()

    def person(self, theme: str) -> _Person:
        rng = self.rng
        org = rng.choice(_ORGS[theme])
        slug = re.sub(r"[^a-z]", "", org.lower().replace("&", "and"))
        if len(slug) > 22:
            slug = "".join(re.sub(r"[^a-z]", "", w.lower()) for w in org.split()[:2])
        domain = slug + rng.choice((".com", ".org", ".net", ".example.com"))
        return _Person(rng.choice(_FIRST), rng.choice(_LAST), rng.choice(_TITLES[theme]), org,
                       domain)

    def fill(self, template: str) -> str:
        return template.format_map(self.slots) if "{" in template else template

    def wrap(self, t: _Text) -> _Text:
        return _wrap(t, self.width) if self.width else t

    def planted(self, templates: Sequence[str], *values: tuple[str, str]) -> _Text:
        """A fragment from a template with `{v}` (and `{v2}`) slots holding the given
        (type, value) pairs; kinds in TRAP_KINDS become traps, "US_ITIN" also a trap."""
        template = self.rng.choice(templates)
        pieces = re.split(r"\{(v2?)\}", template)
        t = _Text()
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                t.add(self.fill(piece))
                continue
            kind, value = values[0 if piece == "v" else 1]
            if kind == "US_ITIN":
                t.traps.append(Label("ITIN_AS_SSN", t.size, t.size + len(value), value))
            if kind in TRAP_KINDS:
                t.trap(kind, value)
            else:
                t.label(kind, value)
        return self.wrap(t)

    def sentence(self) -> str:
        rng = self.rng
        pool = _PROSE[self.theme] if rng.random() < 0.75 else _PROSE["general"]
        for _ in range(6):  # avoid repeating a sentence within one email while we can
            template = rng.choice(pool)
            if template not in self.used:
                break
        self.used.add(template)
        text = self.fill(template)
        first = text.split(" ", 1)[0]
        if first in _LOWERABLE and rng.random() < 0.2:
            text = rng.choice(_OPENERS) + text[0].lower() + text[1:]
        return text

    def prose(self, sentences: int | None = None) -> _Text:
        k = sentences or self.rng.randint(2, 5)
        return self.wrap(_Text(" ".join(self.sentence() for _ in range(k))))


# ---------------------------------------------------------------------------------------
# Planted identifiers (labels)

_T = tuple[str, ...]

_SSN_KW: _T = (
    "For the W-4 and I-9 I have {first}'s SSN as {v}; can you confirm it matches the card?",
    "Employee: {full}\nDepartment: {dept}\nSSN: {v}",
    "Her social security number is {v}, and she asked that we not send it by text again.",
    "| Field | Value |\n|---|---|\n| Name | {full} |\n| SSN# | {v} |\n| Department | {dept} |",
    "Soc Sec No. {v} - please update the payroll record before the next run.",
    "Please correct the SSN on file to {v} (the old one had two digits swapped).",
    "The application lists the student's Social Security Number as {v}.",
    "SSN {v}",
    "Applicant: {full}\nSocial Security No.: {v}\nPosition: {dept} associate",
    "As requested, my SSN is {v}. Let me know if you need anything else for the file.",
)
_SSN_AFTER: _T = (
    "{v} is the SSN she gave us over the phone, so please double-check it.",
    "Confirmed {v} (SSN) against the copy of the card in the file.",
)
_SSN_BARE: _T = (
    "Can you update {first}'s record? The number on the card is {v}.",
    "| {full} | {dept} | {v} |",
    "Please use {v} on the beneficiary form for {first}.",
    "I double-checked and the correct number is {v}, not the one on last year's form.",
    "{full}\n{v}\n{dept}",
)
_ITIN_T: _T = (
    "ITIN: {v}",
    "Her Individual Taxpayer Identification Number is {v}; the W-7 was approved in March.",
    "Taxpayer ID (ITIN): {v}\nFiling status: single",
    "Please use {v} on the 1040 for {first}; he does not have a social security card yet.",
    "| {full} | ITIN | {v} |",
    "The IRS letter confirms {first}'s ITIN as {v}.",
)
_CARD_KW: _T = (
    "Please charge the deposit to my {brand} card {v}, exp {exp}.",
    "Card number: {v}\nExpiration: {exp}\nName on card: {full}",
    "Sorry, no, not the card ending in 4242: the full card is {v} (exp {exp}, CVV {cvv}).",
    "CC# {v} exp {exp}",
    "Credit card: {brand} {v}",
    "You can put the registration fee on the corporate card, {v}, expiring {exp}.",
    "| Cardholder | {full} |\n| Card | {v} |\n| Expires | {exp} |",
    "My credit card number is {v} and the billing ZIP is the same as the office.",
)
_CARD_BARE: _T = (
    "Use {v} for the hotel block, it is the one we used last year.",
    "{full}\n{v}\n{exp}",
    "Here it is again: {v}. Thanks for taking care of this!",
    "The number she read out was {v}, if that helps.",
)
_ABA_KW: _T = (
    "Routing number: {v}",
    "My routing number is {v}; the deposit should land on the next business day.",
    "ABA {v}",
    "ABA/Routing: {v}\nBank: {bank}",
    "RTN: {v}",
    "Please wire to {bank}, ABA {v}, for further credit to our operating account.",
    "The routing transit number printed on the check is {v}.",
    "Transit number {v} ({bank})",
    "{v} is the routing number for {bank}.",
)
_ABA_ACCT: _T = (
    "Bank: {bank}\nRouting: {v}\nAccount: {v2}\nAccount type: Checking",
    "Direct deposit: routing number {v}, account number {v2}.",
    "| Bank | {bank} |\n| ABA | {v} |\n| Account number | {v2} |",
    "Please wire to {bank}, ABA {v},\nfor credit to account number {v2}.",
)
_BANK_KW: _T = (
    "Account number: {v}",
    "Please update my direct deposit to checking account {v} at {bank}.",
    "Acct #: {v}",
    "The refund will go to savings account {v} by the end of the week.",
    "Bank account: {v} ({bank})",
    "Account No. {v}",
    "Funds were drawn from checking account {v} on {weekday}.",
    "| Account number | {v} |",
)
_IBAN_KW: _T = (
    "IBAN: {v}",
    "IBAN {v}\nBIC: {bic}",
    "Beneficiary: {full}\nIBAN: {v}\nSWIFT/BIC: {bic}",
    "Please transfer the balance to our IBAN {v} at {bank_eu}.",
    "| IBAN | {v} |\n| BIC | {bic} |",
)
_IBAN_BARE: _T = (
    "Our bank details have changed; please pay the balance to {v} at {bank_eu}.",
    "Beneficiary: {full}\n{v}\n{bank_eu}",
    "The refund should go to {v}, not the old bank.",
)
_PASSPORT_KW: _T = (
    "Passport number {v}",
    "Passport No.: {v}\nNationality: United States",
    "For the visa letter, her U.S. passport is {v}, valid until next year.",
    "| Traveler | {full} |\n| Passport | {v} |",
    "My passport # is {v}; please use it for the hotel registration.",
    "{v} (passport) - the airline needs it 72 hours before departure.",
)
_DL_KW: _T = (
    "Driver's License: {v} ({state})",
    "DL# {v}",
    "DLN {v}",
    "Driver license number {v}, issued in {state}.",
    "For the rental, my {state} driver's license is {v}.",
    "| Driver's license | {v} |",
)
_NPI_KW: _T = (
    "NPI: {v}",
    "Rendering provider: Dr. {full}, NPI # {v}",
    "Our National Provider Identifier is {v} for all claims from this office.",
    "Please add Dr. {last} (NPI {v}) to the referral.",
    "| Provider | Dr. {full} |\n| NPI | {v} |",
)
_DEA_KW: _T = (
    "Prescriber: Dr. {dfirst} {dlast}, DEA {v}",
    "DEA# {v}",
    "DEA number: {v} (Dr. {dlast})",
    "The controlled substance script needs the prescriber's DEA, which is {v}.",
)
_DEA_BARE: _T = (
    "Prescriber: Dr. {dfirst} {dlast} ({v})",
    "Dr. {dfirst} {dlast}, MD\n{v}",
    "Signed: {dfirst} {dlast}, MD - {v}",
)
_ICD_KW: _T = (
    "Diagnosis: {v} ({desc})",
    "Dx: {v}",
    "ICD-10: {v} - {desc}",
    "The claim was billed with ICD10 code {v}.",
    "She was diagnosed with {v} ({desc}) last spring.",
    "Primary dx {v}; secondary dx {v2}.",
    "| Diagnosis | {v} |",
)
_MRN_KW: _T = (
    "MRN: {v}",
    "Patient MRN {v} - please attach the results to the chart.",
    "Medical record number {v}",
    "MR# {v}",
    "| MRN | {v} |",
)
_MRN_PREFIXED: _T = (
    "Patient: {full} ({v})",
    "Chart {v} has been updated with the consult note.",
    "{v}",
)
_DOB_KW: _T = (
    "DOB: {v}",
    "Patient: {full}, DOB {v}",
    "Date of birth: {v}",
    "The student was born on {v}.",
    "Birthdate {v}",
    "D.O.B. {v}",
    "| Date of birth | {v} |",
    "Name: {full}\nDOB: {v}",
)


def _id_ssn(c: _Ctx) -> _Text:
    rng = c.rng
    d = _ssn_digits(rng)
    r = rng.random()
    if r < 0.8:
        v = _fmt_ssn(d, "-" if r < 0.6 else " ")
        pool = _SSN_KW if rng.random() < 0.6 else _SSN_BARE
        return c.planted(pool, ("US_SSN", v))
    return c.planted(_SSN_KW if rng.random() < 0.8 else _SSN_AFTER, ("US_SSN", d))


def _id_itin(c: _Ctx) -> _Text:
    v = _fmt_ssn(_itin_digits(c.rng), "-" if c.rng.random() < 0.8 else " ")
    return c.planted(_ITIN_T, ("US_ITIN", v))


def _id_card(c: _Ctx) -> _Text:
    brand, d = _card(c.rng)
    c.slots["brand"] = brand
    pool = _CARD_KW if c.rng.random() < 0.7 else _CARD_BARE
    return c.planted(pool, ("CREDIT_CARD", _fmt_card(c.rng, d)))


def _id_aba(c: _Ctx) -> _Text:
    v = _aba(c.rng)
    if c.rng.random() < 0.4:
        return c.planted(_ABA_ACCT, ("ABA_ROUTING_NUMBER", v), ("US_BANK_NUMBER",
                                                                 _bank_number(c.rng)))
    return c.planted(_ABA_KW, ("ABA_ROUTING_NUMBER", v))


def _id_bank(c: _Ctx) -> _Text:
    return c.planted(_BANK_KW, ("US_BANK_NUMBER", _bank_number(c.rng)))


def _id_iban(c: _Ctx) -> _Text:
    number = _iban(c.rng)
    c.slots["bank_eu"], c.slots["bic"] = _IBAN_BIC[number[:2]]
    v = _fmt_iban(c.rng, number)
    return c.planted(_IBAN_KW if c.rng.random() < 0.7 else _IBAN_BARE, ("IBAN_CODE", v))


def _id_passport(c: _Ctx) -> _Text:
    return c.planted(_PASSPORT_KW, ("US_PASSPORT", _passport(c.rng)))


def _id_dl(c: _Ctx) -> _Text:
    state, v = _dl(c.rng)
    c.slots["state"] = state
    return c.planted(_DL_KW, ("US_DRIVER_LICENSE", v))


def _id_npi(c: _Ctx) -> _Text:
    return c.planted(_NPI_KW, ("US_NPI", _npi(c.rng)))


def _id_dea(c: _Ctx) -> _Text:
    first, last = c.rng.choice(_FIRST), c.rng.choice(_LAST)
    c.slots["dfirst"], c.slots["dlast"] = first, last
    pool = _DEA_KW if c.rng.random() < 0.6 else _DEA_BARE
    return c.planted(pool, ("US_DEA_NUMBER", _dea(c.rng, last)))


def _id_icd(c: _Ctx) -> _Text:
    (code, desc), (code2, _d2) = c.rng.sample(_ICD10, 2)
    c.slots["desc"] = desc
    return c.planted(_ICD_KW, ("ICD10_CODE", code), ("ICD10_CODE", code2))


def _id_mrn(c: _Ctx) -> _Text:
    v = _mrn(c.rng)
    return c.planted(_MRN_PREFIXED if v.startswith("MRN-") else _MRN_KW,
                     ("MEDICAL_RECORD_NUMBER", v))


def _id_dob(c: _Ctx) -> _Text:
    v = _fmt_date(_date(c.rng, 1935, 2018), c.rng.randrange(7))
    return c.planted(_DOB_KW, ("DATE_OF_BIRTH", v))


_ID_MAKERS: dict[str, Callable[[_Ctx], _Text]] = {
    "US_SSN": _id_ssn, "US_ITIN": _id_itin, "CREDIT_CARD": _id_card,
    "ABA_ROUTING_NUMBER": _id_aba, "IBAN_CODE": _id_iban, "US_BANK_NUMBER": _id_bank,
    "US_PASSPORT": _id_passport, "US_DRIVER_LICENSE": _id_dl, "US_NPI": _id_npi,
    "US_DEA_NUMBER": _id_dea, "ICD10_CODE": _id_icd, "MEDICAL_RECORD_NUMBER": _id_mrn,
    "DATE_OF_BIRTH": _id_dob,
}

_ID_WEIGHTS: dict[str, dict[str, float]] = {
    "healthcare": {"US_NPI": 3, "US_DEA_NUMBER": 3, "ICD10_CODE": 3,
                   "MEDICAL_RECORD_NUMBER": 3, "DATE_OF_BIRTH": 3, "US_SSN": 1,
                   "CREDIT_CARD": 1, "US_DRIVER_LICENSE": 0.5, "US_PASSPORT": 0.3},
    "bank": {"ABA_ROUTING_NUMBER": 4, "US_BANK_NUMBER": 3, "IBAN_CODE": 3, "CREDIT_CARD": 2,
             "US_SSN": 1.5, "US_ITIN": 1, "DATE_OF_BIRTH": 1, "US_DRIVER_LICENSE": 0.5,
             "US_PASSPORT": 0.5},
    "hr": {"US_SSN": 3, "US_ITIN": 2, "US_PASSPORT": 2, "US_DRIVER_LICENSE": 2,
           "DATE_OF_BIRTH": 2, "US_BANK_NUMBER": 2, "ABA_ROUTING_NUMBER": 2, "IBAN_CODE": 0.5},
    "school": {"DATE_OF_BIRTH": 3, "US_SSN": 1.5, "US_ITIN": 1, "CREDIT_CARD": 1,
               "MEDICAL_RECORD_NUMBER": 0.5, "ICD10_CODE": 0.5, "US_DRIVER_LICENSE": 1,
               "US_PASSPORT": 1},
    "business": {"CREDIT_CARD": 4, "IBAN_CODE": 2, "ABA_ROUTING_NUMBER": 1,
                 "US_BANK_NUMBER": 1, "US_PASSPORT": 1, "US_DRIVER_LICENSE": 1, "US_SSN": 0.5},
    "retail": {"CREDIT_CARD": 4, "IBAN_CODE": 1, "US_DRIVER_LICENSE": 0.5},
    "it": {"CREDIT_CARD": 1, "US_SSN": 1, "US_DRIVER_LICENSE": 1, "US_PASSPORT": 1,
           "DATE_OF_BIRTH": 1},
    "library": {"CREDIT_CARD": 1, "DATE_OF_BIRTH": 1, "US_DRIVER_LICENSE": 1},
}


# ---------------------------------------------------------------------------------------
# Traps and everyday blocks


def _trap_invalid_ssn(c: _Ctx) -> _Text:
    rng = c.rng
    r = rng.randrange(7)
    if r == 0:
        d = f"000{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
    elif r == 1:
        d = f"666{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
    elif r == 2:
        group = rng.choice([*range(1, 50), *range(66, 70), 89, 93])
        d = f"9{_digits(rng, 2)}{group:02d}{rng.randint(1, 9999):04d}"
    elif r == 3:
        d = f"{rng.randint(1, 665):03d}00{rng.randint(1, 9999):04d}"
    elif r == 4:
        d = f"{rng.randint(1, 665):03d}{rng.randint(1, 99):02d}0000"
    else:
        d = rng.choice(("078051120", "219099999", "457555462"))
    v = _fmt_ssn(d, "-" if rng.random() < 0.8 else " ")
    return c.planted((
        "The applicant wrote SSN {v} on the form, which cannot be right; can you call her?",
        "The sample card in the training deck shows {v}.",
        "Payroll rejected {v} as an invalid SSN, so the W-4 needs to be corrected.",
        "Test record only: SSN {v} (not a real number).",
        "| {full} | {v} | needs correction |",
    ), ("INVALID_SSN", v))


def _trap_luhn_invalid_card(c: _Ctx) -> _Text:
    while True:  # nor may a shorter card hide at its start ("5893 0138 2612 5888" 372)
        _brand, d = _card(c.rng)
        bad = d[:-1] + str((int(d[-1]) + c.rng.randint(1, 9)) % 10)
        if not any(_card_like(bad[:n]) for n in range(12, len(bad) + 1)):
            break
    return c.planted((
        "The card number she gave, {v}, was declined as invalid; please ask for it again.",
        "Card number on the form: {v} (looks like a typo, it does not validate).",
        "We could not process {v}; the number appears to be mistyped.",
    ), ("LUHN_INVALID_CARD", _fmt_card(c.rng, bad)))


def _trap_card_test(c: _Ctx) -> _Text:
    v = c.rng.choice(("1234 5678 9012 3456", "1234-5678-9012-3456", "1234567890123456",
                      "0000 0000 0000 0000", "0000-0000-0000-0000"))
    return c.planted((
        "The form placeholder still says {v}, please replace it with real instructions.",
        "Do not use {v} in the demo; the sandbox rejects it.",
        "Example format: {v}",
    ), ("CARD_TEST_SEQUENCE", v))


def _trap_invalid_iban(c: _Ctx) -> _Text:
    good = _iban(c.rng)
    c.slots["bank_eu"], c.slots["bic"] = _IBAN_BIC[good[:2]]
    while True:
        i = c.rng.randrange(4, len(good))
        if good[i].isdigit():
            bad = good[:i] + str((int(good[i]) + c.rng.randint(1, 9)) % 10) + good[i + 1:]
            if not mod_97_10.is_valid(bad[4:] + bad[:4]):
                break
    return c.planted((
        "The IBAN on the invoice, {v}, fails validation; please confirm it by phone.",
        "IBAN {v} was rejected by the bank as invalid.",
        "We think {v} has a typo - the bank portal will not accept it.",
    ), ("INVALID_IBAN", _fmt_iban(c.rng, bad)))


def _trap_invalid_routing(c: _Ctx) -> _Text:
    rng = c.rng
    while True:
        if rng.random() < 0.7:
            good = _aba(rng)
            d = good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)
        else:  # right checksum, prefix outside the Federal Reserve ranges
            body = f"{rng.choice([*range(13, 21), *range(33, 61), *range(73, 80)])}"
            body += _digits(rng, 6)
            d = body + rtn.calc_check_digit(body)
        if not _aba_ok(d):
            break
    return c.planted((
        "The routing number {v} on the form does not validate; please send a voided check.",
        "Routing: {v} (rejected by the payroll system as invalid)",
        "The ABA number {v} that was emailed to us is not a real routing number.",
    ), ("INVALID_ROUTING", d))


def _trap_bare_routing(c: _Ctx) -> _Text:
    return c.planted((
        "Please quote reference {v} when you call us back.",
        "| Reference | {v} |",
        "Our file number for this matter is {v}.",
    ), ("BARE_ROUTING", _aba(c.rng)))


def _trap_invalid_dea(c: _Ctx) -> _Text:
    good = _dea(c.rng, c.rng.choice(_LAST))
    bad = good[:-1] + str((int(good[-1]) + c.rng.randint(1, 9)) % 10)
    return c.planted((
        "The pharmacy says DEA {v} does not validate; can you check the prescriber's "
        "certificate?",
        "DEA# {v} (returned by the state PDMP as invalid)",
    ), ("INVALID_DEA", bad))


def _luhn16(rng: random.Random) -> str:
    body = rng.choice(("4", "51", "52", "6011", "3", "7", "8", "1", "2", "9"))
    body += _digits(rng, 15 - len(body))
    return body + luhn.calc_check_digit(body)


def _trap_luhn_order(c: _Ctx) -> _Text:
    d = _luhn16(c.rng)
    v = d if c.rng.random() < 0.7 else " ".join(d[i:i + 4] for i in range(0, 16, 4))
    return c.planted((
        "Your order number {v} has been received and is being processed.",
        "Confirmation number: {v}",
        "Please reference invoice {v} with your payment.",
        "Order number {v} - thank you for your purchase!",
        "Your confirmation number is {v}. Keep it for your records.",
    ), ("LUHN_ORDER_NUMBER", v))


def _url_number(rng: random.Random) -> str:
    if rng.random() < 0.35:
        return _luhn_cardlike(rng)
    return _safe(rng, lambda r: str(r.randint(1, 9)) + _digits(r, r.randint(8, 19)))


def _luhn_cardlike(rng: random.Random) -> str:
    while True:
        _b, d = _card(rng)
        if len(d) == 16:
            return d


def _trap_url(c: _Ctx) -> _Text:
    n = _url_number(c.rng)
    host = c.rng.choice(("portal", "secure", "docs", "app", "files", "claims"))
    path = c.rng.choice(("claims", "documents", "cases", "share", "view", "statement"))
    t = _Text(c.fill(c.rng.choice(("You can view it here: ", "Link: ", "Details are at ",
                                    "Please use this link: "))))
    t.add(f"https://{host}.{c.sender.domain}/{path}/").trap("URL_NUMBER", n)
    if c.rng.random() < 0.5:
        t.add(f"?ref={_digits(c.rng, 6)}")
    return t


def _order_no(rng: random.Random) -> str:
    return _safe(rng, lambda r: r.choice((
        f"{r.randint(111, 114)}-{_digits(r, 7)}-{_digits(r, 7)}", f"W{_digits(r, 9)}",
        f"{r.randint(10, 99)}{_digits(r, 6)}", f"SO-{_digits(r, 6)}")))


def _address(c: _Ctx, t: _Text, name: str) -> None:
    rng = c.rng
    city, st, prefix = rng.choice(_CITIES)
    t.add(f"{name}\n{rng.randint(12, 9800)} {rng.choice(_STREETS)}")
    if rng.random() < 0.4:
        t.add(f", {rng.choice(('Suite', 'Apt', 'Unit'))} {rng.randint(2, 900)}")
    t.add(f"\n{city}, {st} ").trap("ZIP_PLUS_4", _zip4(rng, prefix))


def _block_order(c: _Ctx) -> _Text:
    rng = c.rng
    t = _Text("Order Confirmation\n")
    t.add(rng.choice(("Order #", "Order number: ", "Order No. "))).trap("ORDER_NUMBER",
                                                                       _order_no(rng))
    t.add("\nPlaced on: ").trap("DATE", _fmt_date(_date(rng, 2025, 2026), rng.randrange(7)))
    t.add("\n\n| Item | Qty | Price |\n|---|---|---|\n")
    total = 0.0
    for _ in range(rng.randint(1, 4)):
        price = rng.randint(5, 240) + rng.choice((0.99, 0.0, 0.49, 0.95))
        qty = rng.randint(1, 3)
        total += price * qty
        t.add(f"| {rng.choice(_PRODUCTS)} | {qty} | ${price:,.2f} |\n")
    t.add(f"\nSubtotal: ${total:,.2f}\nShipping: $0.00\nTotal: ${total * 1.0625:,.2f}\n")
    t.add(f"Payment: {rng.choice(('Visa', 'Mastercard', 'Amex'))} ending in "
          f"{_digits(rng, 4)}\n\nShip to:\n")
    _address(c, t, c.slots["full"])
    return t


def _tracking(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(4)
    if kind == 0:
        alnum = "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXY") for _ in range(6))
        return "UPS", f"1Z{alnum}{rng.choice(('01', '02', '03', '12'))}{_digits(rng, 8)}"
    if kind == 1:
        return "FedEx", _safe(rng, lambda r: str(r.randint(1, 9)) + _digits(r, 11))
    if kind == 2:
        return "FedEx", _safe(rng, lambda r: str(r.randint(1, 9)) + _digits(r, 14))
    d = rng.choice(("9400", "9205", "9361")) + _digits(rng, rng.choice((16, 18)))
    if rng.random() < 0.3:
        d = " ".join(d[i:i + 4] for i in range(0, len(d), 4))
    return "USPS", d


def _block_shipping(c: _Ctx) -> _Text:
    rng = c.rng
    carrier, number = _tracking(rng)
    t = _Text(rng.choice(("Your package is on its way!\n", "Shipping update\n",
                          "Good news - your items have shipped.\n")))
    t.add(f"Carrier: {carrier}\n", rng.choice(("Tracking number: ", "Tracking #: ",
                                               "Track your package with tracking number ")))
    t.trap("TRACKING_NUMBER", number)
    when = _date(rng, 2026, 2026, workday=True)
    t.add(f"\nEstimated delivery: {_WEEKDAYS[when.weekday()]}, ")
    t.trap("DATE", _fmt_date(when, 2))
    t.add(" by end of day\n")
    if carrier != "USPS" and rng.random() < 0.5:
        t.add("Track it online: https://www.example-carrier.com/track?tracknum=")
        t.trap("TRACKING_NUMBER", number).add("\n")
    return t


def _block_meeting(c: _Ctx) -> _Text:
    rng = c.rng
    when = _date(rng, 2026, 2026, workday=True)
    t = _Text(c.fill(rng.choice(("{project} sync", "Quarterly review with {dept}",
                                 "Kickoff: {project}", "1:1 check-in", "Vendor demo"))))
    t.add(f"\nWhen: {_WEEKDAYS[when.weekday()]}, ").trap("DATE", _fmt_date(when, 2))
    t.add(" ").trap("TIME", _time(rng))
    t.add(" (UTC-05:00) Eastern Time (US & Canada)\n")
    t.add(rng.choice(("Where: Microsoft Teams Meeting\n", "Where: Conference Room 4B\n",
                      "Where: Zoom\n")))
    mid = _safe(rng, lambda r: f"{r.randint(2, 9)}{_digits(r, 2)} {_digits(r, 4)} "
                               f"{_digits(r, 4)}")
    t.add("Join online: https://meet.example.com/j/").trap("URL_NUMBER", mid.replace(" ", ""))
    t.add(f"?pwd={''.join(rng.choice('abcdefghjkmnpqrstuvwxyzABCDEFGH') for _ in range(12))}"
          "\nMeeting ID: ").trap("MEETING_ID", mid)
    t.add(f"\nPasscode: {_digits(rng, 6)}\nDial in by phone: ").trap("PHONE", _phone(rng))
    t.add(f",,{mid.replace(' ', '')}# United States\n")
    return t


def _block_ticket(c: _Ctx) -> _Text:
    rng = c.rng
    t = _Text("Ticket ")
    t.trap("TICKET_ID", rng.choice((f"INC{_digits(rng, 7)}", f"REQ{_digits(rng, 7)}",
                                    f"#{_safe(rng, lambda r: '2026' + _digits(r, 10))}",
                                    f"Case #{_digits(rng, 8)}")))
    t.add(" has been updated.\n")
    t.add(c.fill(rng.choice(("Summary: Outlook crashes when opening a shared calendar\n",
                             "Summary: VPN disconnects every few minutes\n",
                             "Summary: Laptop will not dock to the USB-C station\n",
                             "Summary: Request new phone for {full}\n"))))
    t.add(f"Priority: P{rng.randint(2, 4)}   Status: "
          f"{rng.choice(('In Progress', 'Awaiting User', 'Resolved'))}\n")
    t.add(f"Device: LT-{rng.randint(1000, 9999)} (Windows ")
    t.trap("VERSION", f"10.0.{rng.choice((19045, 22621, 22631))}.{rng.randint(1000, 4999)}")
    t.add(")\nAgent version: ").trap("VERSION", f"v{rng.randint(1, 9)}.{rng.randint(0, 30)}."
                                                f"{rng.randint(0, 12)}")
    if rng.random() < 0.5:
        t.add("\nKernel: build ").trap("VERSION", f"{rng.choice(('4.18.0', '5.14.0'))}-"
                                                  f"{rng.randint(300, 560)}.el"
                                                  f"{rng.choice('89')}")
    t.add("\nDevice ID: ").trap("GUID", _guid(rng))
    while True:
        kb = "KB50" + _digits(rng, 5)
        if not _dea_ok(kb):
            break
    t.add("\nLast update installed: ").trap("KB_ARTICLE", kb)
    t.add(f"\nView: https://help.{c.sender.domain}/tickets/")
    t.trap("URL_NUMBER", _url_number(rng)).add("\n")
    return t


def _block_books(c: _Ctx) -> _Text:
    rng = c.rng
    t = _Text(c.fill(rng.choice(("Reading list for {course}:\n", "Books on order:\n",
                                 "Here are the titles for {course}:\n"))))
    for i in range(rng.randint(2, 5)):
        b13 = _isbn13(rng)
        style = rng.randrange(4)
        if style == 0:
            v = isbn.format(b13)
        elif style == 1:
            v = b13
        elif style == 2 and b13.startswith("978"):
            v = isbn.format(isbn.to_isbn10(b13))
        else:
            v = isbn.to_isbn10(b13) if b13.startswith("978") else b13
        lead = rng.choice(("ISBN ", "ISBN: ", "ISBN-13: " if len(_compact(v)) == 13 else
                           "ISBN-10: "))
        t.add(f"{i + 1}. {rng.choice(_BOOKS)} by {c.slots['full']} ({lead}").trap("ISBN", v)
        t.add(")\n")
    return t


def _block_devices(c: _Ctx) -> _Text:
    rng = c.rng
    t = _Text("Devices to be enrolled:\n")
    for _ in range(rng.randint(1, 3)):
        d = _imei(rng)
        v = d if rng.random() < 0.6 else f"{d[:2]}-{d[2:8]}-{d[8:14]}-{d[14]}"
        t.add(f"{c.slots['full']} - {rng.choice(_DEVICES)} - IMEI ").trap("IMEI", v).add("\n")
    return t


def _block_invoice(c: _Ctx) -> _Text:
    rng = c.rng
    t = _Text(rng.choice(("Invoice ", "Invoice No. ", "INV-")))
    t.trap("INVOICE_NUMBER", f"2026-{_digits(rng, 6)}" if rng.random() < 0.7 else
           _safe(rng, lambda r: str(r.randint(10000, 999999))))
    issued = _date(rng, 2026, 2026)
    t.add("\nInvoice date: ").trap("DATE", _fmt_date(issued, rng.choice((0, 1, 2))))
    t.add("\nDue: ").trap("DATE", _fmt_date(issued + dt.timedelta(days=30), 0))
    t.add(rng.choice(("\nPO ", "\nPO# ", "\nPurchase order: "))).trap(
        "PO_NUMBER", _safe(rng, lambda r: "45" + _digits(r, 8)))
    t.add(c.fill("\nAmount due: {amount}.00\nTerms: Net 30\n"))
    return t


def _trap_phone_line(c: _Ctx) -> _Text:
    t = _Text(c.fill(c.rng.choice(("You can reach {first} directly at ",
                                   "Please call the front desk at ",
                                   "The after-hours line is ",
                                   "Call me on my cell if anything comes up: "))))
    t.trap("PHONE", _phone(c.rng)).add(".")
    return c.wrap(t)


_TRAP_MAKERS: dict[str, Callable[[_Ctx], _Text]] = {
    "invalid_ssn": _trap_invalid_ssn, "luhn_invalid_card": _trap_luhn_invalid_card,
    "card_test": _trap_card_test, "invalid_iban": _trap_invalid_iban,
    "invalid_routing": _trap_invalid_routing, "invalid_dea": _trap_invalid_dea,
    "luhn_order": _trap_luhn_order, "url": _trap_url, "order": _block_order,
    "shipping": _block_shipping, "meeting": _block_meeting, "ticket": _block_ticket,
    "books": _block_books, "devices": _block_devices, "invoice": _block_invoice,
    "phone": _trap_phone_line,
}
_TRAP_WEIGHTS: dict[str, dict[str, float]] = {
    "business": {"meeting": 3, "invoice": 3, "order": 1, "luhn_order": 1, "url": 1,
                 "invalid_iban": 1, "luhn_invalid_card": 1, "card_test": 0.5, "phone": 1},
    "healthcare": {"meeting": 1, "invalid_dea": 2, "invalid_ssn": 1, "url": 1, "phone": 2,
                   "invoice": 0.5},
    "school": {"meeting": 2, "books": 2, "invalid_ssn": 1, "phone": 1, "url": 1},
    "bank": {"invalid_routing": 3, "invalid_iban": 2, "luhn_invalid_card": 1,
             "invalid_ssn": 1, "url": 1, "card_test": 1, "meeting": 1},
    "it": {"ticket": 4, "devices": 3, "meeting": 1, "url": 1, "card_test": 0.5},
    "retail": {"order": 3, "shipping": 3, "luhn_order": 2, "luhn_invalid_card": 1, "url": 1},
    "hr": {"invalid_ssn": 2, "meeting": 1, "invalid_routing": 1, "devices": 1, "phone": 1},
    "library": {"books": 4, "order": 1, "shipping": 1, "meeting": 1},
}
_ALL_TRAPS = {k: 0.35 for k in _TRAP_MAKERS}


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


# ---------------------------------------------------------------------------------------
# Email scaffolding


def _greeting(c: _Ctx) -> _Text:
    r = c.recipient
    return _Text(c.rng.choice((f"Hi {r.first},", f"Hello {r.first},", f"Dear {r.full},",
                               f"Dear Mr./Ms. {r.last},", "Hi all,", "Good morning team,",
                               f"{r.first} -", "Hello,")))


def _closing(c: _Ctx) -> _Text:
    s = c.sender
    return _Text(c.rng.choice((f"Thanks,\n{s.first}", f"Best regards,\n{s.full}",
                               f"Kind regards,\n{s.full}", f"Cheers,\n{s.first}",
                               f"Sincerely,\n{s.full}", f"Thank you!\n{s.first}")))


def _signature(c: _Ctx, p: _Person, short: bool = False) -> _Text:
    rng = c.rng
    t = _Text("--\n" if rng.random() < 0.5 else "")
    t.add(f"{p.full}\n{p.title} | {p.org}\n")
    if not short and rng.random() < 0.8:
        city, st, prefix = rng.choice(_CITIES)
        t.add(f"{rng.randint(12, 9800)} {rng.choice(_STREETS)}")
        if rng.random() < 0.5:
            t.add(f", Suite {rng.randint(100, 950)}")
        t.add(f"\n{city}, {st} ").trap("ZIP_PLUS_4", _zip4(rng, prefix)).add("\n")
    t.add(rng.choice(("Office: ", "Tel: ", "Phone: ", "T: ", "Direct: ")))
    t.trap("PHONE", _phone(rng))
    if rng.random() < 0.5:
        t.add(rng.choice((" | Mobile: ", " | Cell: ", "\nFax: ", "\nM: ")))
        t.trap("PHONE", _phone(rng))
    t.add(f"\n{p.email} | www.{p.domain}")
    return t


def _quote(c: _Ctx, inner: list[_Text]) -> _Text:
    rng = c.rng
    other = c.recipient
    when = _date(rng, 2026, 2026)
    wd = _WEEKDAYS[when.weekday()]
    quoted = _Text()
    parts = [_Text(f"Hi {c.sender.first},"), c.prose(), *inner]
    if rng.random() < 0.5:
        parts.append(c.prose())
    parts += [_Text(f"Thanks,\n{other.first}")]
    if rng.random() < 0.6:
        parts.append(_signature(c, other, short=True))
    for i, part in enumerate(parts):
        if i:
            quoted.add("\n\n")
        quoted.extend(part.rstrip())
    t = _Text()
    style = rng.randrange(3)
    if style == 0:
        t.add(f"On {wd[:3]}, ").trap("DATE", f"{when.day} {_MONTHS[when.month - 1][:3]} "
                                             f"{when.year}")
        t.add(" at ").trap("TIME", f"{rng.randint(7, 22):02d}:{rng.randint(0, 59):02d}")
        t.add(f", {other.full} <{other.email}> wrote:\n").extend(quoted, "> ")
    elif style == 1:
        t.add("On ").trap("DATE", _fmt_date(when, 5)).add(", at ").trap("TIME", _time(rng))
        t.add(f", {other.full} <{other.email}> wrote:\n\n").extend(quoted, "> ")
    else:
        subject = c.fill(rng.choice(_SUBJECT_LINES[c.theme]))
        t.add(f"-----Original Message-----\nFrom: {other.full} <{other.email}>\nSent: {wd}, ")
        t.trap("DATE", _fmt_date(when, 2)).add(" ").trap("TIME", _time(rng))
        t.add(f"\nTo: {c.sender.full} <{c.sender.email}>\nSubject: RE: {subject}\n\n")
        t.extend(quoted)
    return t


def _compose(rng: random.Random) -> Sample:
    c = _Ctx(rng)
    ids: list[_Text] = []
    if rng.random() < 0.5:
        weights = _ID_WEIGHTS[c.theme]
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            typ = _pick(rng, weights) if rng.random() < 0.85 else rng.choice(LABEL_TYPES)
            ids.append(_ID_MAKERS[typ](c))
    traps = [_TRAP_MAKERS[_pick(rng, _TRAP_WEIGHTS[c.theme] if rng.random() < 0.7
                                else _ALL_TRAPS)](c) for _ in range(rng.choice((1, 1, 2, 3)))]
    if rng.random() < 1 / 40:
        traps.append(_trap_bare_routing(c))
    middle = ids + traps
    rng.shuffle(middle)
    inner: list[_Text] = []
    if rng.random() < 0.45:
        inner = [f for f in middle if rng.random() < 0.3]
        middle = [f for f in middle if all(f is not g for g in inner)]
    tail: list[_Text] = [_closing(c), _signature(c, c.sender)]
    if rng.random() < 0.5:
        tail.append(_Text(_HIPAA if c.theme == "healthcare" and rng.random() < 0.7
                          else rng.choice(_DISCLAIMERS)))
    if inner or rng.random() < 0.3:
        tail.append(_quote(c, inner))
    head = [_greeting(c), c.prose()]
    size = sum(f.size + 2 for f in (*head, *middle, *tail))
    target = min(7600, 1500 + int(rng.expovariate(1 / 1600)))
    fillers: list[_Text] = []
    while size < target:
        f = c.prose() if rng.random() < 0.7 else _TRAP_MAKERS[_pick(rng, _TRAP_WEIGHTS[
            c.theme])](c)
        if size + f.size + 2 > 8000:
            if size >= 1500:
                break
            continue
        fillers.append(f)
        size += f.size + 2
    for f in fillers:
        middle.insert(rng.randint(0, len(middle)), f)
    out = _Text()
    for i, part in enumerate((*head, *middle, *tail)):
        if i:
            out.add("\n\n")
        out.extend(part.rstrip())
    text = out.text()
    for x in [*out.labels, *out.traps]:  # runs of digits in an IBAN that pass for a card
        if x.type in ("IBAN_CODE", "INVALID_IBAN"):
            for m in _CARDISH.finditer(text, x.start, x.end):
                if _card_like(re.sub(r"\D", "", m.group())):
                    out.traps.append(Label("CARD_IN_IBAN", m.start(), m.end(), m.group()))
    return Sample(text, tuple(out.labels), tuple(sorted(out.traps, key=lambda x: x.start)))


# ---------------------------------------------------------------------------------------
# Fairness


def _kw(src: str) -> str:
    return src.replace(" ", r"[\s>]+")


# keyword patterns per type, each with the lower-case literals one of which a match holds
# (a cheap test before the regex runs)
_KEYWORDS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (name, anchors, re.compile(_kw(src), re.IGNORECASE)) for name, anchors, src in (
        ("US_SSN", ("ssn", "social", "soc", "ss#"),
         r"\bssn|social security|\bsoc\.?(?:sec| sec)\b|\bss#"),
        ("ABA_ROUTING_NUMBER", ("routing", "aba", "rtn", "transit", "wire"),
         r"\brouting\b|\baba\b|\brtn\b|\btransit\b|\bwire to\b"),
        ("US_BANK_NUMBER", ("account", "acct", "checking", "savings"),
         r"\baccount|\bacct\b|\bchecking\b|\bsavings\b"),
        ("US_PASSPORT", ("passport",), r"passport"),
        ("US_DRIVER_LICENSE", ("driv", "dl", "licen"),
         r"driver'?s? licen|driving licen|\bDL\b|\bDLN\b|\blicen[cs]e\b"),
        ("US_NPI", ("npi", "national"), r"\bnpi\b|national provider"),
        ("ICD10_CODE", ("diagnos", "dx", "icd"), r"diagnos|\bdx\b|\bicd"),
        ("MEDICAL_RECORD_NUMBER", ("mrn", "record", "mr", "chart", "patient"),
         r"\bmrn\b|medical record|\bmr#|\bmr no\b|\bchart\b|\bpatient id"),
        ("DATE_OF_BIRTH", ("dob", "d.o.b", "birth", "born"),
         r"\bdob\b|d\.o\.b|date of birth|\bborn\b|\bbirth"),
    ))

# Labels have their keyword at most 40 characters before them (or 20 after); no competing
# value may sit closer than this to a keyword, which leaves a margin for detectors whose
# windows are a little wider. (A bank account number comes right after its keyword, so
# for US_BANK_NUMBER the zone is 32 characters: "direct deposit: routing number ...".)
_NEAR_BEFORE, _NEAR_AFTER = 64, 32

# the types whose keyword may also follow the value ("123456789 (SSN)")
_KEYWORD_AFTER = frozenset(("US_SSN", "ABA_ROUTING_NUMBER", "US_PASSPORT"))

_TOKEN = re.compile(
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}, \d{4}"
    r"|\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{4}"
    r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b"
    r"|\b[A-Z]{1,3}-?\d(?:-?\d){4,20}\b"
    r"|\b\d(?:[ -]?\d){5,21}\b"
    r"|\b[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?\b")

_NEGATIVE = re.compile(r"\b(?:orders?|invoice|confirmation|tracking|imei|isbn|ticket)\b",
                       re.IGNORECASE)
# (each starts with a plain character class so that the regex engine skips ahead fast)
_CARDISH = re.compile(r"\d(?<![\d-]\d)(?:\d{11,18}|\d{3}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,4})?"
                      r"|\d{3}[ -]\d{6}[ -]\d{4,5})(?![\d-])")
_SSNISH = re.compile(r"\d(?<![\d-]\d)\d\d[- ]\d{2}[- ]\d{4}(?![\d-])")
_DEAISH = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{7}\b")


def _could_be(type_: str, token: str) -> bool:
    """Could a detector of this keyword-driven type take `token` for one of its values?
    (The shapes are the formats the types are written in: runs of digits without
    separators, except the dashed Florida and Illinois licences and dates.)"""
    if type_ == "DATE_OF_BIRTH":
        return _DATE_RE.fullmatch(token) is not None
    if type_ == "ICD10_CODE":
        return _ICD_RE.fullmatch(token) is not None
    if type_ == "US_SSN":
        return _ssn_ok(token)
    if type_ == "ABA_ROUTING_NUMBER":
        return _aba_ok(token)
    if type_ == "US_BANK_NUMBER":
        return token.isdigit() and 8 <= len(token) <= 17
    if type_ == "US_PASSPORT":
        return re.fullmatch(r"\d{9}|[A-Z]\d{8}", token) is not None
    if type_ == "US_DRIVER_LICENSE":
        return re.fullmatch(r"[A-Z]\d{7}|\d{8,9}|[A-Z]\d{3}-\d{3}-\d{2}-\d{3}-\d|"
                            r"[A-Z]\d{3}-\d{4}-\d{4}", token) is not None
    if type_ == "US_NPI":
        return _npi_ok(token)
    return re.fullmatch(r"(?:MRN-?)?\d{6,10}", token) is not None  # MEDICAL_RECORD_NUMBER


def _keyword_hits(text: str, lower: str, anchors: Sequence[str],
                  pattern: re.Pattern[str]) -> list[re.Match[str]]:
    """The matches of `pattern`, looked for only around the anchors' occurrences (every
    keyword holds an anchor at most 12 characters from its start)."""
    hits: dict[int, re.Match[str]] = {}
    for anchor in anchors:
        i = lower.find(anchor)
        while i != -1:
            m = pattern.search(text, max(0, i - 12), i + 40)
            if m and m.start() <= i:
                hits[m.start()] = m
            i = lower.find(anchor, i + 1)
    return [hits[k] for k in sorted(hits)]


def _fair(s: Sample) -> bool:
    text = s.text

    def labelled(start: int, end: int, type_: str | None = None) -> bool:
        return any(x.start < end and start < x.end and (type_ is None or x.type == type_)
                   for x in s.labels)

    def trapped(start: int, end: int) -> bool:
        return any(x.start < end and start < x.end for x in s.traps)

    lower = text.lower()
    for type_, anchors, pattern in _KEYWORDS:
        for kw in _keyword_hits(text, lower, anchors, pattern):
            for tok in _TOKEN.finditer(text, kw.end()):  # keyword up to 40 chars before
                if tok.start() > kw.start() + (32 if type_ == "US_BANK_NUMBER" else _NEAR_BEFORE):
                    break
                if (_could_be(type_, tok.group())
                        and not labelled(tok.start(), tok.end(), type_)):
                    return False
            if type_ not in _KEYWORD_AFTER:
                continue
            line = text.rfind("\n", 0, max(0, kw.start() - _NEAR_AFTER - 40)) + 1
            for tok in _TOKEN.finditer(text, line, kw.start()):  # or up to 20 chars after
                if (tok.end() >= kw.start() - _NEAR_AFTER and _could_be(type_, tok.group())
                        and not labelled(tok.start(), tok.end(), type_)):
                    return False
    for x in s.labels:
        if _NEGATIVE.search(text, max(0, x.start - 40), x.end + 20):
            return False
    for m in _CARDISH.finditer(text):
        if (_card_like(re.sub(r"\D", "", m.group())) and not labelled(m.start(), m.end())
                and not trapped(m.start(), m.end())):
            return False
    for m in _SSNISH.finditer(text):
        d = re.sub(r"\D", "", m.group())
        if (_ssn_ok(d) or _itin_ok(d)) and not labelled(m.start(), m.end()):
            return False
    for m in _DEAISH.finditer(text):
        if _dea_ok(m.group()) and not labelled(m.start(), m.end(), "US_DEA_NUMBER"):
            return False
    return True


# ---------------------------------------------------------------------------------------
# Public API


def _samples(seed: int) -> Iterator[Sample]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    while True:
        sample = _compose(rng)
        if _fair(sample):
            yield sample


def generate(seed: int = 1, count: int = 2000) -> list[Sample]:
    """`count` labelled email bodies, the same ones for the same seed (and the first
    `count` of a longer run with that seed)."""
    it = _samples(seed)
    return [next(it) for _ in range(count)]


def corpus_text(seed: int = 1, size_bytes: int = 8_000_000) -> str:
    """The generated emails separated by blank lines, cut to `size_bytes` of UTF-8 (the
    last email is truncated to fit; the result is at most 3 bytes short)."""
    pieces: list[str] = []
    used = 0
    for sample in _samples(seed):
        piece = ("\n\n" if pieces else "") + sample.text
        n = len(piece.encode())
        if used + n <= size_bytes:
            pieces.append(piece)
            used += n
            if used == size_bytes:
                break
            continue
        pieces.append(piece.encode()[:size_bytes - used].decode(errors="ignore"))
        break
    return "".join(pieces)


def _medium(findings: Iterable[_Finding]) -> list[_Finding]:
    return [f for f in findings if f.confidence in ("medium", "high")]


def score(samples: Iterable[Sample], scan: Scanner) -> dict[str, dict[str, float | int]]:
    """Per type: tp, fp, fn, precision, recall, f1 of `scan` at confidence medium.

    A medium/high finding overlapping a label of its type is a TP (each label counts once;
    a further finding on an already counted label is neither TP nor FP); any other
    medium/high finding is an FP of its type; a label no finding overlaps is an FN.
    precision = tp/(tp+fp) (1.0 with no findings), recall = tp/(tp+fn) (1.0 with no
    labels), f1 = 2tp/(2tp+fp+fn). Types with no labels and no findings are left out."""
    counts: dict[str, list[int]] = {t: [0, 0, 0] for t in LABEL_TYPES}
    for sample in samples:
        found = [False] * len(sample.labels)
        for f in _medium(scan(sample.text)):
            hits = [i for i, x in enumerate(sample.labels)
                    if x.type == f.type and f.start < x.end and x.start < f.end]
            row = counts.setdefault(f.type, [0, 0, 0])
            if not hits:
                row[1] += 1
                continue
            fresh = [i for i in hits if not found[i]]
            if fresh:
                found[fresh[0]] = True
                row[0] += 1
        for i, x in enumerate(sample.labels):
            if not found[i]:
                counts.setdefault(x.type, [0, 0, 0])[2] += 1
    table: dict[str, dict[str, float | int]] = {}
    for type_, (tp, fp, fn) in counts.items():
        if tp == fp == fn == 0:
            continue
        table[type_] = {
            "tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
            "f1": 2 * tp / (2 * tp + fp + fn),
        }
    return table


def trap_report(samples: Iterable[Sample], scan: Scanner) -> dict[str, dict[str, int]]:
    """Per trap kind: how many there are and how many a medium/high finding overlaps
    (not counting a finding that overlaps a label of its own type, e.g. US_ITIN on an
    ITIN_AS_SSN trap)."""
    report: dict[str, dict[str, int]] = {k: {"count": 0, "hit": 0} for k in TRAP_KINDS}
    for sample in samples:
        findings = [f for f in _medium(scan(sample.text))
                    if not any(x.type == f.type and f.start < x.end and x.start < f.end
                               for x in sample.labels)]
        for trap in sample.traps:
            row = report.setdefault(trap.type, {"count": 0, "hit": 0})
            row["count"] += 1
            if any(f.start < trap.end and trap.start < f.end for f in findings):
                row["hit"] += 1
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Print the per-type table (and trap hits) of `sealgate.dlp.scan_text`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args(argv)
    from sealgate.dlp import scan_text  # lazily: the corpus does not depend on the engine

    samples = generate(args.seed, args.count)
    table = score(samples, scan_text)
    print(f"{'type':<24} {'tp':>5} {'fp':>5} {'fn':>5} {'prec':>6} {'recall':>6} {'f1':>6}")
    for type_, row in sorted(table.items()):
        print(f"{type_:<24} {row['tp']:>5} {row['fp']:>5} {row['fn']:>5} "
              f"{row['precision']:>6.3f} {row['recall']:>6.3f} {row['f1']:>6.3f}")
    print(f"\n{'trap kind':<24} {'count':>6} {'hit':>5}")
    for kind, hits in trap_report(samples, scan_text).items():
        print(f"{kind:<24} {hits['count']:>6} {hits['hit']:>5}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
