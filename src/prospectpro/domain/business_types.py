"""What a user types ("coffee shops") → the OpenStreetMap tags that find it.

Tags are standard Map Features values. A type lists every tag mappers commonly use for
it (a dentist is tagged amenity=dentist or healthcare=dentist), so a query is the union.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace

from prospectpro.domain.normalize import text_key
from prospectpro.errors import InvalidInput

MAX_TYPE_LENGTH = 100
# Keys whose values name a kind of business; others (building=*, landuse=*) do not.
# In this order the importer picks a place's category from its tags: a cafe
# that is also shop=coffee is amenity=cafe.
OSM_BUSINESS_KEYS: tuple[str, ...] = (
    "amenity", "shop", "craft", "office", "healthcare", "tourism", "leisure",
)  # fmt: skip

_RAW_TAG = re.compile(r"^\s*([A-Za-z_:]+)\s*=\s*([A-Za-z0-9_-]+)\s*$")
# Below this difflib ratio a "suggestion" is more noise than help.
_CUTOFF = 0.7
_EXAMPLES = ("cafe", "restaurant", "dentist", "plumber", "hotel")


@dataclass(frozen=True)
class BusinessType:
    name: str  # canonical, stable: stored with campaigns, accepted back by resolve
    label: str
    tags: tuple[str, ...]
    synonyms: tuple[str, ...] = ()
    # The same type in Overture's category scheme (categories.primary/alternate, basic_category): the
    # second column of this table, filled from OVERTURE_CATEGORIES below (issue 12).
    overture: tuple[str, ...] = ()


def _t(name: str, label: str, tags: str, *synonyms: str) -> BusinessType:
    return BusinessType(name, label, tuple(tags.split()), synonyms)


_TYPES: tuple[BusinessType, ...] = (
    # Food and drink
    _t("cafe", "Cafe", "amenity=cafe", "coffee shop", "coffee house", "coffeehouse",
       "coffee", "coffee bar", "espresso bar", "tea room", "tearoom"),
    _t("restaurant", "Restaurant", "amenity=restaurant", "eatery", "diner", "bistro",
       "brasserie", "trattoria", "pizzeria", "pizza", "dining", "sushi", "steakhouse"),
    _t("fast_food", "Fast food", "amenity=fast_food", "fast food restaurant", "takeaway",
       "take away", "takeout", "burger", "burger joint", "kebab", "hot dog", "food truck"),
    _t("bar", "Bar", "amenity=bar", "cocktail bar", "wine bar", "lounge bar"),
    _t("pub", "Pub", "amenity=pub", "tavern", "gastropub", "brewpub", "beer pub"),
    _t("nightclub", "Nightclub", "amenity=nightclub", "night club", "disco", "discotheque",
       "dance club"),
    _t("ice_cream", "Ice cream", "amenity=ice_cream shop=ice_cream", "ice cream parlor",
       "ice cream parlour", "ice cream shop", "gelato", "gelateria"),
    _t("bakery", "Bakery", "shop=bakery", "bakeshop", "bake shop", "bread shop",
       "patisserie", "pastry shop"),
    _t("deli", "Deli", "shop=deli", "delicatessen", "delicatessen shop"),
    _t("butcher", "Butcher", "shop=butcher", "butchery", "butcher shop", "meat shop"),
    _t("seafood", "Fish shop", "shop=seafood", "fish shop", "fishmonger", "seafood shop"),
    _t("greengrocer", "Greengrocer", "shop=greengrocer", "fruit and vegetable shop",
       "produce store", "vegetable shop"),
    _t("confectionery", "Confectionery", "shop=confectionery shop=chocolate", "candy store",
       "candy shop", "sweet shop", "chocolate shop", "chocolatier", "confectioner"),
    _t("tea_shop", "Tea shop", "shop=tea", "tea store", "tea merchant"),
    _t("alcohol", "Wine and liquor store", "shop=alcohol shop=wine", "liquor store",
       "liquor shop", "wine store", "wine shop", "off licence", "off license",
       "bottle shop", "spirits shop", "liquor"),
    _t("supermarket", "Supermarket", "shop=supermarket", "grocery", "grocery store",
       "groceries", "grocer", "food store", "hypermarket"),
    _t("convenience", "Convenience store", "shop=convenience", "convenience store",
       "corner shop", "corner store", "minimarket", "mini market", "bodega"),
    _t("kiosk", "Kiosk", "shop=kiosk", "newsstand", "news stand"),
    _t("tobacco", "Tobacco shop", "shop=tobacco", "tobacconist", "tobacco shop",
       "smoke shop", "cigar shop"),
    # Shops
    _t("florist", "Florist", "shop=florist", "flower shop", "flower store", "flowers"),
    _t("clothes", "Clothing store", "shop=clothes", "clothing store", "clothes store",
       "clothing shop", "clothes shop", "clothing", "apparel", "fashion", "boutique",
       "fashion boutique"),
    _t("shoes", "Shoe store", "shop=shoes", "shoe store", "shoe shop", "footwear"),
    _t("jewelry", "Jewelry store", "shop=jewelry", "jeweler", "jeweller", "jewellery",
       "jewelry store", "jewellery shop", "jewelry shop"),
    _t("optician", "Optician", "shop=optician", "optometrist", "eyewear", "glasses",
       "eyeglasses", "optical store", "optical shop"),
    _t("bookstore", "Bookstore", "shop=books", "bookshop", "book store", "book shop",
       "books", "bookseller"),
    _t("bicycle_shop", "Bicycle shop", "shop=bicycle", "bike shop", "bicycle store",
       "bike store", "cycle shop", "bicycle repair", "bike repair"),
    _t("car_dealer", "Car dealer", "shop=car", "car dealership", "auto dealer",
       "car showroom", "used cars", "dealership", "car sales"),
    _t("car_repair", "Car repair", "shop=car_repair", "mechanic", "auto repair",
       "car mechanic", "auto mechanic", "garage", "car garage", "auto shop",
       "car service", "auto service"),
    _t("furniture", "Furniture store", "shop=furniture", "furniture store",
       "furniture shop"),
    _t("electronics", "Electronics store", "shop=electronics", "electronics store",
       "electronics shop", "electronic store", "consumer electronics"),
    _t("mobile_phone", "Mobile phone shop", "shop=mobile_phone", "mobile phone shop",
       "mobile phone store", "phone shop", "phone store", "cell phone store",
       "cellphone store", "mobile shop"),
    _t("computer_shop", "Computer shop", "shop=computer", "computer store",
       "computer shop"),
    _t("hardware", "Hardware store", "shop=hardware shop=doityourself", "hardware store",
       "diy store", "home improvement", "home improvement store"),
    _t("garden_centre", "Garden centre", "shop=garden_centre", "garden center",
       "plant nursery", "garden store", "garden shop"),
    _t("pet_shop", "Pet shop", "shop=pet", "pet store", "pet supplies"),
    _t("pet_grooming", "Pet grooming", "shop=pet_grooming", "dog grooming",
       "dog groomer", "pet groomer"),
    _t("sports_shop", "Sports shop", "shop=sports", "sports store", "sporting goods",
       "sports equipment"),
    _t("gift_shop", "Gift shop", "shop=gift", "gift store", "souvenir shop",
       "souvenir store", "souvenirs", "gifts"),
    _t("toy_store", "Toy store", "shop=toys", "toy shop", "toys"),
    _t("stationery", "Stationery shop", "shop=stationery", "stationery store",
       "office supplies", "stationer"),
    _t("second_hand", "Second-hand shop", "shop=second_hand shop=charity",
       "second hand store", "second hand shop", "thrift store", "thrift shop",
       "charity shop", "vintage store", "vintage shop", "consignment store"),
    _t("department_store", "Department store", "shop=department_store"),
    _t("mall", "Shopping mall", "shop=mall", "shopping mall", "shopping centre",
       "shopping center"),
    _t("cosmetics", "Cosmetics store", "shop=cosmetics shop=perfumery",
       "cosmetics shop", "perfumery", "perfume shop", "beauty supply"),
    # Personal services
    _t("hairdresser", "Hairdresser", "shop=hairdresser", "hair salon", "barber",
       "barbershop", "barber shop", "hair stylist", "hairstylist", "hairdressing",
       "hair dresser"),
    _t("beauty_salon", "Beauty salon", "shop=beauty", "beautician", "beauty parlor",
       "beauty parlour", "nail salon", "nail studio", "cosmetician", "esthetician",
       "aesthetician", "manicure", "day spa"),
    _t("massage", "Massage", "shop=massage", "massage parlor", "massage parlour",
       "massage therapist", "massage therapy", "massage studio"),
    _t("tattoo", "Tattoo studio", "shop=tattoo", "tattoo parlor", "tattoo parlour",
       "tattoo studio", "tattoo shop", "tattoo artist", "tattooist"),
    _t("laundry", "Laundry", "shop=laundry", "laundromat", "launderette", "laundrette",
       "laundry service"),
    _t("dry_cleaning", "Dry cleaning", "shop=dry_cleaning", "dry cleaner",
       "dry cleaners"),
    _t("tailor", "Tailor", "craft=tailor shop=tailor", "alterations", "seamstress",
       "dressmaker"),
    _t("shoe_repair", "Shoe repair", "craft=shoemaker", "cobbler", "shoemaker",
       "shoe repair shop"),
    _t("funeral_directors", "Funeral directors", "shop=funeral_directors",
       "funeral home", "funeral director", "undertaker", "funeral parlor",
       "funeral parlour"),
    _t("sauna", "Sauna", "leisure=sauna", "public sauna"),
    _t("gym", "Gym", "leisure=fitness_centre", "fitness", "fitness centre",
       "fitness center", "fitness club", "fitness studio", "health club"),
    # Trades
    _t("plumber", "Plumber", "craft=plumber", "plumbing", "plumbing services"),
    _t("electrician", "Electrician", "craft=electrician", "electrical contractor",
       "electrical services"),
    _t("carpenter", "Carpenter", "craft=carpenter", "joiner", "joinery", "carpentry",
       "woodworker"),
    _t("hvac", "HVAC", "craft=hvac", "heating", "air conditioning", "heating and cooling",
       "hvac contractor", "heating engineer"),
    _t("painter", "Painter", "craft=painter", "house painter", "painting contractor",
       "painter and decorator", "decorator", "painting services"),
    _t("roofer", "Roofer", "craft=roofer", "roofing", "roofing contractor"),
    _t("locksmith", "Locksmith", "craft=locksmith shop=locksmith", "locksmiths"),
    _t("gardener", "Gardener", "craft=gardener", "landscaper", "landscaping",
       "gardening services"),
    _t("caterer", "Caterer", "craft=caterer", "catering", "catering service"),
    _t("brewery", "Brewery", "craft=brewery", "microbrewery", "craft brewery", "brewer"),
    _t("photographer", "Photographer", "craft=photographer", "photography studio",
       "photo studio", "photography"),
    # Health
    _t("dentist", "Dentist", "amenity=dentist healthcare=dentist", "dental clinic",
       "dental office", "dental practice", "dentistry", "orthodontist"),
    _t("doctor", "Doctor", "amenity=doctors healthcare=doctor", "doctors", "physician",
       "gp", "general practitioner", "medical practice", "family doctor"),
    _t("clinic", "Clinic", "amenity=clinic healthcare=clinic", "medical clinic",
       "health centre", "health center", "medical centre", "medical center"),
    _t("hospital", "Hospital", "amenity=hospital healthcare=hospital"),
    _t("pharmacy", "Pharmacy", "amenity=pharmacy healthcare=pharmacy", "chemist",
       "drugstore", "drug store", "apothecary"),
    _t("physiotherapist", "Physiotherapist", "healthcare=physiotherapist", "physio",
       "physiotherapy", "physical therapist", "physical therapy"),
    _t("veterinary", "Veterinary", "amenity=veterinary", "vet", "veterinarian",
       "veterinary clinic", "vet clinic", "animal hospital"),
    # Offices and professional services
    _t("lawyer", "Lawyer", "office=lawyer", "attorney", "law firm", "law office",
       "solicitor", "legal services", "barrister", "advocate"),
    _t("notary", "Notary", "office=notary", "notary public"),
    _t("accountant", "Accountant", "office=accountant", "accounting", "accounting firm",
       "bookkeeper", "bookkeeping", "cpa", "chartered accountant"),
    _t("tax_advisor", "Tax advisor", "office=tax_advisor", "tax consultant",
       "tax preparer", "tax preparation"),
    _t("real_estate_agent", "Real estate agent", "office=estate_agent", "real estate",
       "realtor", "estate agent", "real estate agency", "realty", "property agent",
       "letting agent"),
    _t("insurance", "Insurance", "office=insurance", "insurance agent",
       "insurance agency", "insurance broker", "insurance company"),
    _t("architect", "Architect", "office=architect", "architecture firm",
       "architectural firm", "architecture office"),
    _t("it_company", "IT company", "office=it", "it", "it services", "it consultancy",
       "software company", "software", "software house", "software developer",
       "software development"),
    _t("company", "Company office", "office=company", "office", "business",
       "corporate office", "company office"),
    _t("advertising_agency", "Advertising agency", "office=advertising_agency",
       "marketing agency", "ad agency", "advertising", "marketing", "digital agency"),
    _t("consulting", "Consulting", "office=consulting", "consultant", "consultancy",
       "management consulting", "business consulting"),
    _t("employment_agency", "Employment agency", "office=employment_agency",
       "recruitment agency", "staffing agency", "recruiter", "temp agency"),
    _t("travel_agency", "Travel agency", "shop=travel_agency office=travel_agent",
       "travel agent", "travel office", "tour operator"),
    _t("bank", "Bank", "amenity=bank", "bank branch"),
    # Lodging
    _t("hotel", "Hotel", "tourism=hotel", "boutique hotel"),
    _t("hostel", "Hostel", "tourism=hostel", "youth hostel", "backpackers"),
    _t("guest_house", "Guest house", "tourism=guest_house", "guesthouse",
       "bed and breakfast", "b&b", "bnb", "inn"),
    _t("motel", "Motel", "tourism=motel"),
    # Culture and leisure
    _t("museum", "Museum", "tourism=museum"),
    _t("art_gallery", "Art gallery", "tourism=gallery shop=art", "gallery", "art shop",
       "art dealer"),
    _t("cinema", "Cinema", "amenity=cinema", "movie theater", "movie theatre", "movies"),
    _t("theatre", "Theatre", "amenity=theatre", "theater", "playhouse"),
    # Education and care
    _t("kindergarten", "Kindergarten", "amenity=kindergarten", "preschool",
       "pre school", "nursery school"),
    _t("childcare", "Childcare", "amenity=childcare", "daycare", "day care",
       "child care", "creche"),
    _t("school", "School", "amenity=school", "primary school", "elementary school",
       "secondary school", "high school"),
    _t("language_school", "Language school", "amenity=language_school",
       "language course", "language centre", "language center"),
    _t("driving_school", "Driving school", "amenity=driving_school", "driving lessons",
       "driving instructor"),
    _t("music_school", "Music school", "amenity=music_school", "music lessons"),
    # Vehicles and travel
    _t("car_rental", "Car rental", "amenity=car_rental", "car hire", "rent a car",
       "rental car"),
    _t("car_wash", "Car wash", "amenity=car_wash"),
    _t("fuel", "Fuel station", "amenity=fuel", "gas station", "petrol station",
       "filling station", "service station"),
)  # fmt: skip

# Overture categories (schema pinned in providers/overture.py) where they differ from the type's name and
# its OSM tag values, which Overture mostly shares ("dentist", "cafe", "florist"): those are added for every
# type, so each known type finds places in both sources.
OVERTURE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "cafe": ("coffee_shop", "cafe", "tea_room"),
    "restaurant": ("restaurant", "pizza_restaurant", "italian_restaurant", "sushi_restaurant", "steakhouse"),
    "fast_food": ("fast_food_restaurant", "burger_restaurant", "hot_dog_restaurant", "food_truck"),
    "ice_cream": ("ice_cream_shop",),
    "deli": ("delicatessen",),
    "butcher": ("butcher_shop",),
    "seafood": ("seafood_market", "fish_market"),
    "confectionery": ("candy_store", "chocolatier"),
    "alcohol": ("liquor_store", "wine_shop"),
    "supermarket": ("supermarket", "grocery_store"),
    "convenience": ("convenience_store",),
    "florist": ("flowers_and_gifts_shop", "florist"),
    "clothes": ("clothing_store", "fashion", "boutique"),
    "shoes": ("shoe_store",),
    "jewelry": ("jewelry_store",),
    "bookstore": ("bookstore", "book_store"),
    "car_dealer": ("car_dealer", "automotive_dealer"),
    "car_repair": ("automotive_repair", "auto_repair"),
    "hairdresser": ("hair_salon", "barber"),
    "beauty_salon": ("beauty_salon", "nail_salon"),
    "gym": ("gym", "fitness_center"),
    "plumber": ("plumbing", "plumber"),
    "electrician": ("electrician",),
    "hvac": ("hvac_services",),
    "dentist": ("dentist", "general_dentistry", "cosmetic_dentist", "orthodontist"),
    "doctor": ("doctor", "family_practice", "general_practitioner"),
    "clinic": ("medical_center", "health_clinic"),
    "physiotherapist": ("physical_therapy",),
    "veterinary": ("veterinarian",),
    "lawyer": ("lawyer", "attorney", "law_firm", "legal_services"),
    "accountant": ("accountant", "accounting_firm", "bookkeeper"),
    "tax_advisor": ("tax_services",),
    "real_estate_agent": ("real_estate_agent", "real_estate"),
    "insurance": ("insurance_agency",),
    "architect": ("architect", "architectural_designer"),
    "it_company": ("it_service_and_computer_repair", "software_development"),
    "advertising_agency": ("advertising_agency", "marketing_agency"),
    "employment_agency": ("employment_agencies",),
    "hotel": ("hotel",),
    "guest_house": ("bed_and_breakfast", "guest_house"),
    "cinema": ("movie_theater", "cinema"),
    "kindergarten": ("preschool", "kindergarten"),
    "childcare": ("child_care_and_day_care",),
    "fuel": ("gas_station",),
}


def _with_overture(bt: BusinessType) -> BusinessType:
    values = [tag.partition("=")[2] for tag in bt.tags]
    return replace(bt, overture=tuple(dict.fromkeys((*OVERTURE_CATEGORIES.get(bt.name, ()), bt.name, *values))))


_TYPES = tuple(_with_overture(bt) for bt in _TYPES)


def _singular(key: str) -> str:
    """English singular of the last word, good enough for what people type."""
    head, _, word = key.rpartition(" ")
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return key
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "zes", "ches", "shes")):
        word = word[:-2]
    elif word.endswith("s"):
        word = word[:-1]
    return f"{head} {word}" if head else word


def _build_indexes() -> tuple[dict[str, BusinessType], dict[str, BusinessType]]:
    exact: dict[str, BusinessType] = {}
    for bt in _TYPES:
        for phrase in (bt.name, bt.label, *bt.synonyms):
            key = text_key(phrase)
            other = exact.setdefault(key, bt)
            # One phrase meaning two types would make resolution depend on table order.
            assert other is bt, f"{phrase!r} names both {other.name} and {bt.name}"
    singular: dict[str, BusinessType] = {}
    ambiguous: set[str] = set()
    for key, bt in exact.items():
        stem = _singular(key)
        if singular.setdefault(stem, bt) is not bt:
            ambiguous.add(stem)
    for stem in ambiguous:
        del singular[stem]
    return exact, singular


_EXACT, _SINGULAR = _build_indexes()
_BY_TAG: dict[str, BusinessType] = {tag: bt for bt in _TYPES for tag in bt.tags}
_PHRASES: list[tuple[str, str, BusinessType]] = sorted(
    {(text_key(p), p, bt) for bt in _TYPES for p in (bt.name, *bt.synonyms)},
    key=lambda item: (item[0], item[1]),
)


def _raw_tag(text: str) -> BusinessType | None:
    match = _RAW_TAG.match(text)
    if not match:
        return None
    key, value = match.group(1).lower(), match.group(2).lower()
    if key not in OSM_BUSINESS_KEYS:
        raise InvalidInput(
            f"unsupported OSM key '{key}': use one of {', '.join(OSM_BUSINESS_KEYS)}",
            details={"allowed_keys": list(OSM_BUSINESS_KEYS), "suggestions": []},
        )
    tag = f"{key}={value}"
    # A known tag resolves to its type, so "amenity=dentist" also finds healthcare=dentist.
    known = _BY_TAG.get(tag)
    if known is not None:
        return known
    return BusinessType(tag, value.replace("_", " ").capitalize(), (tag,), ())


def _suggestions(key: str) -> list[str]:
    names: list[str] = []
    candidates: list[str] = []
    if len(key) >= 3:
        # "hair" is far from "hair salon" by edit ratio but plainly meant it.
        candidates += [k for k in _EXACT if key in k.split() or (len(k) >= 4 and k in key)]
    for probe in (key, _singular(key)):
        candidates += difflib.get_close_matches(probe, list(_EXACT), n=20, cutoff=_CUTOFF)
    for candidate in candidates:
        name = _EXACT[candidate].name
        if name not in names:
            names.append(name)
    return names[:5]


def resolve_business_type(text: str) -> BusinessType:
    """The type a user meant, ignoring case, accents, punctuation and plurals.

    A raw tag on a business key ("shop=kiosk", "craft=winery") is also accepted, so
    any Map Features value can be searched without a table entry.
    """
    stripped = (text or "").strip()
    if not stripped:
        raise InvalidInput("business type is empty")
    if len(stripped) > MAX_TYPE_LENGTH:
        raise InvalidInput(
            f"business type is too long: at most {MAX_TYPE_LENGTH} characters",
            details={"max_length": MAX_TYPE_LENGTH},
        )
    raw = _raw_tag(stripped)
    if raw is not None:
        return raw
    key = text_key(stripped)
    found = _EXACT.get(key) or _SINGULAR.get(_singular(key))
    if found is not None:
        return found
    suggestions = _suggestions(key)
    if suggestions:
        message = f"unknown business type '{stripped}'. Did you mean: {', '.join(suggestions)}?"
    else:
        message = (
            f"unknown business type '{stripped}'. Try e.g. {', '.join(_EXAMPLES)};"
            " `prospectpro types` lists them all."
        )
    raise InvalidInput(message, details={"suggestions": suggestions})


def all_business_types() -> list[BusinessType]:
    """Every known type, sorted by canonical name."""
    return sorted(_TYPES, key=lambda bt: bt.name)


def suggest(prefix: str, limit: int = 10) -> list[str]:
    """Autocomplete: names, then synonyms, starting with prefix; then those containing it.

    Each returned phrase resolves with resolve_business_type. An empty prefix lists
    canonical names.
    """
    if limit <= 0:
        return []
    key = text_key(prefix or "")
    if not key:
        return [bt.name for bt in all_business_types()][:limit]
    # Canonical names first: they are what `prospectpro types` shows.
    ranked: list[tuple[int, str]] = []
    seen: set[str] = set()
    for phrase_key, phrase, bt in _PHRASES:
        if phrase_key in seen or key not in phrase_key:
            continue
        seen.add(phrase_key)
        rank = (0 if phrase == bt.name else 1) if phrase_key.startswith(key) else 2
        ranked.append((rank, phrase))
    ranked.sort(key=lambda item: item[0])  # stable: alphabetical within a rank
    return [phrase for _, phrase in ranked[:limit]]
