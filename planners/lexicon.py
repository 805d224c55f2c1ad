"""Closed word lists and morphology for the rule-based planner.

There is no tagger here: the reader (planners/reader/) finds noun phrases by their determiners and by the words that end them, and
these lists say which words are what (a colour, a verb, a place, a thing usually seen in the sky). Lists are kept
as whitespace-separated strings so that adding a word is a one-word edit.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def alternatives(text: str) -> list[str]:
    """Multi-word entries written as one '|'-separated string (line breaks inside are ignored)."""
    return [" ".join(part.split()) for part in text.split("|") if part.strip()]


NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "dozen": 12,
}

# Determiners that give a count by themselves (None: the count comes from the noun's number).
QUANTIFIERS = {
    "a": 1, "an": 1, "another": 1, "this": 1, "every": 1, "each": 1,
    "the": None, "these": None, "those": None, "his": None, "her": None, "its": None, "their": None,
    "my": None, "our": None, "your": None,
    "some": 2, "few": 3, "several": 3, "multiple": 3, "various": 3, "many": 5, "numerous": 5, "countless": 6,
}
DEFINITE = _words("the these those this his her its their my our your")
BARE_PLURAL_COUNT = 3  # "apples on a table": more than one, an unspecified few

# "a <collective> of <noun>": the noun is what gets drawn, this many times.
COLLECTIVES = {
    "pair": 2, "couple": 2, "dozen": 12, "few": 3, "handful": 3, "group": 4, "flock": 5, "herd": 4, "crowd": 5,
    "pack": 4, "school": 5, "swarm": 6, "team": 4, "family": 4, "row": 4, "line": 4, "cluster": 4, "bunch": 3,
    "stack": 3, "pile": 3, "heap": 3, "set": 3, "collection": 4, "lot": 5, "lots": 5, "plenty": 5, "number": 4,
    "dozens": 8, "hundreds": 10, "thousands": 10, "series": 3, "trio": 3, "bevy": 4, "gaggle": 4, "colony": 5,
}

COLOURS = _words(
    """red blue green yellow orange purple pink brown black white gray grey golden gold silver beige teal turquoise
    cyan magenta maroon navy crimson scarlet violet indigo lavender ivory cream tan olive emerald ruby sapphire amber
    bronze copper khaki coral mint lime peach rose burgundy charcoal aqua azure cobalt fuchsia mauve ochre rust
    sepia plum cherry lilac chartreuse vermilion blond blonde auburn ginger platinum pastel neon multicolored
    multicoloured rainbow colorful colourful monochrome light dark bright pale deep vivid dull muted"""
)
SIZES = {
    "tiny": 0.55, "miniature": 0.55, "mini": 0.6, "small": 0.75, "little": 0.75, "petite": 0.75, "short": 0.9,
    "large": 1.25, "big": 1.25, "tall": 1.15, "long": 1.1, "wide": 1.15, "huge": 1.45, "giant": 1.5,
    "gigantic": 1.55, "enormous": 1.55, "massive": 1.5, "towering": 1.45, "oversized": 1.35, "colossal": 1.6,
    "largest": 1.35, "biggest": 1.35, "smallest": 0.65, "tallest": 1.25,
}
MATERIALS = _words(
    """wooden wood metal metallic glass plastic stone marble brick ceramic porcelain leather paper cardboard steel
    iron crystal velvet silk wool woolen woollen knitted cotton denim bamboo concrete clay brass rubber wicker straw
    chrome granite oak pine mahogany walnut cedar birch tin aluminum aluminium fabric lace linen fur furry feathered
    glazed terracotta jade pearl ivory rattan canvas plush felt suede burlap cast-iron stainless"""
)
ADJECTIVES = _words(
    """shiny fluffy fuzzy smooth rough glossy matte striped spotted dotted checkered plaid patterned old new ancient
    vintage antique modern futuristic rusty broken cute adorable happy sad angry beautiful pretty elegant ornate
    simple plain fancy cozy cosy wet dry hot cold warm cool fresh ripe rotten empty full open closed young elderly
    aged baby wild tame majestic fierce friendly curious playful lazy tired sleepy glowing sparkling translucent
    transparent round square rectangular triangular circular oval spherical flat curved crooked steaming melting
    frozen burning lit abandoned famous medieval victorian gothic rustic weathered worn dirty clean messy tidy
    handmade homemade delicious tasty juicy crispy fried roasted baked grilled sliced whole half single lone lonely
    solitary other same second third fourth fifth first last middle left right upper lower front back top bottom
    heavy lightweight soft hard fat thin thick slim skinny chubby plump muscular strong weak brave proud shy
    grumpy cheerful joyful smiling laughing crying serious calm quiet noisy busy crowded peaceful quaint charming
    gorgeous lovely ugly scary spooky creepy mysterious magical mystical enchanted ethereal giant tiny fluorescent
    luminous reflective polished carved painted decorated ornamented embroidered tattered torn cracked chipped
    dented faded vibrant sleek shabby chic retro classic traditional contemporary industrial mechanical electric
    digital robotic wooden paper toy stuffed inflatable floating flying sleeping standing sitting running jumping
    swimming dancing walking resting hovering hanging leaning perched parked lying idle male female elder adult
    teenage pet domestic stray hungry thirsty healthy sick wounded injured dead alive living organic tropical arctic
    polar desert alpine sunlit moonlit shadowy misty foggy snowy rainy sunny cloudy stormy windy icy dusty sandy
    muddy grassy leafy rocky mossy hairy spiky prickly sharp blunt dull pointed narrow broad deep shallow high low
    distant nearby faraway realistic cartoonish cartoon stylized detailed intricate elaborate minimalist
    miniature fake real true blank empty-handed extra whole various assorted matching identical different another
    bearded bald curly straight wavy long-haired short-haired freckled masked hooded caped armored armoured
    winged horned tailed one-eyed three-legged snow-capped sun-drenched rain-soaked steamy frosted iced sugary
    chocolate vanilla beloved favorite favourite lucky mighty noble royal present absent
    sunken regal humble sturdy fragile delicate enormous vast endless lush barren dense sparse overgrown wilted blooming
    blossoming flowering fruiting ripe unripe raw cooked steaming boiling sizzling"""
)
INTENSIFIERS = _words("very really quite rather extremely super slightly somewhat fairly pretty incredibly so too")

# Words that start nothing: a noun phrase run stops at any of them.
PREPOSITIONS = _words(
    """of in on at to from with by for under over above below behind beside besides between near into onto through
    across along around against among amongst amid beneath underneath inside outside toward towards past up down off
    out atop upon beyond within without via like as than about after before during throughout except despite per
    opposite alongside next"""
)
CONJUNCTIONS = _words(
    """and or but nor while whereas so yet because although though if when where whose which that who whom whilst
    then also plus"""
)
PRONOUNS = _words(
    """it they them he she him we you i me us itself themselves himself herself one ones something someone
    everything everyone nothing anything there here each all both either neither none"""
)
AUXILIARIES = _words(
    """is are was were be been being am has have had having does do did can could will would should may might must
    shall isn't aren't doesn't don't won't can't not never no yes"""
)
# Verbs as stems; their -s/-es/-ed/-ing forms end a noun phrase when they follow a noun.
VERB_STEMS = _words(
    """peck examine inspect repair forge knead brew pedal steer nuzzle bathe mow plow harvest prune descend ascend
    zoom honk beep gallop chirp perch swim wade splash sprint jog skip tiptoe peer stare gaze
    line say sit stand lie lay sleep nap walk run fly swim hold carry wear look stare gaze watch eat drink play read
    write hang lean rest float hover perch grow stretch shine glow rise set jump dance sing ride drive chase
    face point wave smile laugh cry wait peek peer climb crawl graze loom tower overlook surround fill reflect
    cast appear seem stay sway blow burn flicker sparkle twinkle drift soar glide dive splash roll bounce fetch
    feed pour cook bake paint draw build dig push pull throw catch hug kiss talk chat sip lick bite sniff hunt
    prowl roam wander stroll hurry rush march sail row paddle skate ski surf hike explore admire hide emerge
    peep gather huddle cuddle snuggle curl kneel crouch squat bend reach flow flap fold spin twist shake tilt
    cling hop skip leap dash race pose show depict feature include decorate adorn await guard protect blossom
    bloom wilt melt freeze boil sizzle steam smoke glisten gleam shimmer glitter illuminate brighten dot scatter
    litter occupy welcome greet sell buy offer present bring take give toss juggle balance wobble dangle droop
    sag lounge relax work study idle park stop pass cross approach enter exit move travel flee breathe blink
    nibble chew munch gnaw purr bark growl roar howl chirp buzz whistle shout yell scream whisper listen hear
    smell taste touch feel grab pick put lift raise lower open close shut tap clap snap wink nod shrug frown
    grin glare glance observe patrol flutter swoop rotate revolve swing rock tumble slide slip rip carve sculpt
    create make sew knit weave stitch embroider sketch scribble doodle wrap unwrap unpack unload arrange sort
    organize attach repair mend clean wash scrub wipe polish flash smolder smoulder fizz pop burst explode erupt
    spill drip spray sprinkle gush overflow sprout wither fade peel thaw cruise sink plunge prance gallop canter
    stride strut hobble limp stagger stumble shuffle tiptoe sneak creep slither scurry scamper scramble clamber
    roost burrow doze snooze slumber dream wake yawn bask sunbathe forage stalk pounce escape follow drag tow
    haul hoist heave dribble shoot celebrate dine gulp slurp devour stir whisk mix roast grill fry brew steep
    shop browse learn teach lecture explain gesture beckon meet embrace clasp squeeze pat stroke groom braid
    trim shave don unfold crumple flip turn prop sprawl recline exhibit showcase portray illustrate reveal
    encircle enclose oppose echo resemble"""
)
IRREGULAR_VERBS = _words(
    """is are was were says said shows displays written drawn shown hidden stuck laid sits sat stands stood lies
    lying sleeps slept holds held wears wore worn flies flew flown runs ran swims swam rides rode ridden hangs
    hung shines shone rises sets falls fell grows grew blows blew drives drove eats ate drinks drank sings sang
    reads writes wrote draws drew throws threw catches caught seen sees leans leaned makes made goes went gone
    comes came takes took gives gave brings brought builds built sells sold fights fought feeds fed leads keeps
    kept sweeps swept spins spun"""
)
ADVERB_OK = _words(
    """ugly family lily jelly belly fly holly bully rally ally butterfly dragonfly firefly friendly curly lovely
    lonely silly chilly early elderly jolly wobbly bubbly sparkly frilly wrinkly prickly woolly scaly oily hilly
    burly smelly holy ply italy sally emily molly polly dolly trolley gully folly bully billy tally"""
)

# "a bowl of fruit": the container is the object; what it holds goes into its description.
NON_OBJECTS = _words(
    """image scene view shot canvas composition illustration style
    side left right top bottom middle center centre corner edge front back foreground distance lighting atmosphere
    mood color colour colors colours shade tone tones detail details angle perspective word words text letters
    lettering font typeface caption phrase sentence message title headline quote time day night morning evening
    afternoon noon midnight sunset sunrise dusk dawn twilight weather season winter summer autumn fall spring rain
    fog mist haze sunlight moonlight starlight shadow shadows glow reflection reflections way lot kind type sort bit
    part rest half thing things area place spot moment scenery landscape setting environment vibe feel look
    theme palette gradient texture pattern contrast focus depth resolution quality masterpiece art artwork render
    rendering aesthetic aesthetics motion speed light lights smoke steam air wind breeze sound music heat warmth
    silence darkness one ones other others each name date noise piece slice number destination
    essence spirit soul hue form sense feeling energy beauty harmony balance solitude wildness calm serenity
    tranquility tranquillity nostalgia idea concept notion emotion charm elegance grace presence character
    personality memory symbol aura joy love hope peace chaos simplicity intensity clarity layout arrangement
    framing spread kind"""
)
BACKGROUND_HEADS = _words("background backdrop backgrounds")
# Settings are never boxed: rooms, surfaces and the sky are where things are, not things.
SETTINGS = _words(
    """kitchen bedroom bathroom room office classroom library interior exterior lobby hallway corridor attic
    basement garage studio sky skies space universe galaxy cosmos water waters sea ocean ground floor wall walls
    ceiling grass lawn snow sand surface underwater void abyss outdoors indoors landscape scenery cityscape skyline
    horizon world air darkness setting environment countryside wilderness sidewalk pavement picnic party
    festival celebration ceremony parade concert carnival"""
)
# Sites are the setting when something is in/on/at them, and a boxed thing when placed or counted.
SITES = _words(
    """forest woods jungle beach desert meadow field fields park garden city town village street streets road
    hills hill valley lake river pond cave farm farmland island shore coast harbor harbour port airport station
    subway alley plaza arena stadium hall courtyard backyard yard playground schoolyard lot downtown suburb
    neighborhood neighbourhood savanna savannah tundra prairie swamp marsh canyon glacier mountains mountain
    range peaks dunes rooftop rooftops battlefield ruins orchard vineyard greenhouse pasture mall shop store
    supermarket church cathedral temple museum gallery theater theatre cinema hospital school university campus
    cafe restaurant bar market campsite camp pool clearing seaside lakeside riverside waterfront shoreline stage
    dock pier warehouse factory workshop laboratory lab gym hillside mountainside marketplace bazaar fairground
    boardwalk promenade bakery diner bistro pub bookstore bookshop pharmacy salon barbershop"""
)
# Scenery a prompt mentions in the plural as texture ("stars", "clouds"): background unless counted.
SCENERY_PLURALS = _words(
    """stars clouds waves leaves snowflakes raindrops sparkles petals blossoms weeds reeds ripples mountains hills
    fireflies"""
)
TIME_WORDS = _words(
    """sunset sunrise dusk dawn twilight night midnight noon morning evening afternoon daytime nighttime day
    winter summer autumn spring fall rain storm snowfall fog mist thunderstorm blizzard golden-hour"""
)
# What "with ..." adds to its owner without becoming an object of its own.
FEATURES = _words(
    """hair beard mustache moustache eyes eye ears ear nose tail tails wings wing horns horn antlers spots stripes fur
    feathers scales mane smile face freckles tattoo tattoos legs arms paws claws teeth petals fins pattern patterns
    design print frosting icing sprinkles toppings glaze decorations trim border lettering logo markings expression
    whiskers spikes tentacles bangs braids ponytail makeup lipstick scar scars wrinkles muscles skin shell tier
    tiers layer layers ribbon bow dent dents scratch scratches crack cracks stain stains chip chips"""
)
TEXT_CARRIERS = _words(
    """sign signboard banner poster board billboard label book cover shirt t-shirt tshirt mug cake card note letter
    paper screen monitor menu flag plaque storefront bottle box can bag jersey cup tag sticker notebook chalkboard
    blackboard whiteboard envelope magazine newspaper ticket plate scroll tombstone gravestone trophy badge balloon
    placard signpost marquee awning truck van bus window package crate carton jar tin pennant scoreboard frame
    sketchbook bubble speech tablet laptop phone tv television display headline sweater hoodie cap hat jacket
    packet wrapper postcard greeting stand wall door cart graffiti mailbox menu"""
)
HEADWEAR = _words(
    """hat cap helmet crown hood glasses sunglasses headband tiara beanie wig mask bandana headphones beret turban
    veil goggles halo earmuffs"""
)
ANIMATE = _words(
    """person man woman boy girl child kid baby teenager lady gentleman guy people men women children kids couple
    family farmer chef teacher student doctor nurse police officer soldier knight wizard witch king queen prince
    princess astronaut robot pirate cowboy ninja samurai superhero dancer musician player skateboarder surfer
    cyclist rider runner traveler traveller tourist customer waiter waitress worker artist painter mother father
    grandmother grandfather old-man fisherman dog cat horse cow sheep pig goat chicken duck bird fox wolf bear lion
    tiger elephant giraffe zebra monkey rabbit deer mouse owl penguin dragon unicorn dinosaur vendor seller merchant
    shopkeeper baker florist butcher cashier barista clerk salesman saleswoman peddler hawker"""
)

# Rough drawn size (fraction of the canvas side) by what a thing is; unknown nouns get the default.
SIZE_CLASSES: dict[float, frozenset[str]] = {
    0.52: _words(
        """house building castle tree bus truck train ship boat yacht bed sofa couch elephant giraffe bridge tower
        lighthouse church windmill mountain tent piano wardrobe bookshelf bookcase fountain dinosaur whale dragon
        airplane plane barn cabin cottage skyscraper temple palace tractor storefront stall marquee counter desk
        table fireplace statue volcano rocket spaceship helicopter jet blimp stage wagon carriage van car taxi
        shop bakery cafe pagoda arch gate waterfall cliff hill rainbow tank submarine limousine pickup suv minivan
        display chessboard billboard banner fence wall dock pier log hedge"""
    ),
    0.36: _words(
        """person man woman boy girl child kid teenager lady gentleman guy knight wizard witch king queen prince
        princess astronaut robot pirate cowboy ninja samurai superhero dancer musician player skateboarder surfer
        cyclist rider runner traveler traveller tourist customer waiter waitress worker artist painter mother
        father farmer chef teacher student doctor nurse officer soldier cow bear deer lion tiger horse camel zebra
        gorilla bicycle bike motorcycle scooter chair armchair door window lamp robot tv television refrigerator
        fridge oven stove bench kangaroo ostrich snowman scarecrow mailbox cabinet dresser shelf rack easel
        guitar cello bush shrub pedestal rug carpet blanket tablecloth crate barrel throne grill cart stand sign
        moon sun balloon umbrella flag portrait painting mirror poster case blackboard chalkboard whiteboard"""
    ),
    0.26: _words(
        """dog cat fox wolf pig goat sheep monkey panda koala penguin owl eagle hawk swan goose duck chicken rooster
        turkey seal otter beaver rabbit bunny lamb calf puppy kitten turtle tortoise crocodile alligator dolphin
        shark cake basket laptop computer monitor keyboard suitcase backpack chest box microwave toaster printer
        pumpkin snowball stool teddy bear doll toy clock plant tv sled skateboard surfboard drum trophy vase
        bouquet campfire statue cloud kite parrot peacock figurine cupcake pizza pot crab lobster octopus"""
    ),
    0.16: _words(
        """cup mug glass apple orange banana pear lemon lime peach plum cherry strawberry grape tomato potato carrot
        onion egg cookie donut doughnut muffin croissant bread sandwich burger hamburger hotdog taco book notebook
        phone smartphone camera bottle can jar candle bowl plate spoon fork knife remote control ball baseball
        football basketball tennis rock stone shell flower rose tulip daisy sunflower orchid lily mushroom leaf
        butterfly bee ladybug ant spider frog mouse hamster squirrel bird sparrow robin crow seagull pigeon bat
        fish clownfish goldfish hat cap crown helmet glasses sunglasses shoe boot sock glove scarf tie watch ring
        necklace wallet key coin pencil pen brush paintbrush scissors hammer wrench toothbrush comb bell lantern
        teapot teacup kettle pan cushion pillow bag purse box card envelope ticket note label tag sticker badge
        banana apple gift present candy lollipop popcorn icecream ice-cream cone cube sphere pyramid cylinder dice
        die chess pawn queen king bishop rook microscope tube test-tube flask beaker compass mouse"""
    ),
}
DEFAULT_SIZE = 0.26
TALL = _words(
    """person man woman boy girl child kid lady gentleman guy knight wizard witch king queen prince princess
    astronaut robot pirate cowboy ninja samurai superhero dancer musician teacher student chef farmer doctor nurse
    soldier traveler traveller tourist customer waiter waitress mother father tree lighthouse tower skyscraper
    bottle vase candle giraffe lamp door statue figurine penguin owl flower sunflower tulip rose glass
    bookshelf bookcase wardrobe refrigerator fridge column pillar rocket cactus post pole mailbox easel guitar
    test-tube tube trophy meerkat snowman scarecrow cello fountain pawn queen king bishop rook
    teenager player skateboarder cyclist rider runner worker artist painter officer"""
)
WIDE = _words(
    """car taxi bus truck train van boat ship yacht sofa couch bench bed table desk counter car limousine tractor
    cloud crocodile alligator dolphin shark whale fish turtle sled skateboard surfboard keyboard laptop
    rug carpet blanket tablecloth fence wall bridge log dragon dinosaur horse cow pig sheep dog fox wolf cat tiger
    lion bear deer zebra camel banner billboard marquee storefront shelf rainbow airplane plane jet helicopter
    submarine tank stall display cart seal otter chest wagon sailboat canoe kayak"""
)
SKY = _words(
    """sun moon cloud bird eagle hawk seagull crow pigeon sparrow airplane plane jet helicopter kite balloon star
    rainbow ufo spaceship blimp drone bat comet planet earth mars saturn lantern firework fireworks satellite
    butterfly dragon phoenix angel parrot swallow"""
)
# Things that rest on the ground and so sit low in the picture unless told otherwise.
GROUND = _words(
    """car taxi bus truck train van tractor table desk counter bench sofa couch bed chair stool house building barn
    cabin cottage castle tree bush rock fence person man woman boy girl child kid dog cat horse cow sheep pig goat
    elephant giraffe deer lion tiger bear fox wolf rabbit duck chicken tent campfire fountain statue lighthouse
    bicycle bike motorcycle skateboarder cyclist rug carpet mailbox fire hydrant hydrant wagon cart stall cab jeep
    suv limousine ambulance scooter motorbike stroller lamppost fountain snowman"""
)
# Furniture-like things with room beneath them: "a cat under a table" sits inside the table's box, at its foot.
HAS_ROOM_UNDER = _words(
    """table desk bench chair bed tree umbrella bridge arch piano stool counter shelf awning canopy parasol car"""
)

# Words that only ever occur in the plural, or whose plural is the drawn thing ("glasses" on a face).
PLURALIA = _words(
    """jeans pants trousers shorts scissors glasses sunglasses binoculars headphones earphones pajamas pyjamas
    goggles tongs pliers leggings overalls tights clothes"""
)
IRREGULAR_PLURALS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse", "geese": "goose",
    "feet": "foot", "teeth": "tooth", "oxen": "ox", "cacti": "cactus", "fungi": "fungus", "octopi": "octopus",
    "knives": "knife", "wives": "wife", "lives": "life", "leaves": "leaf", "wolves": "wolf", "shelves": "shelf",
    "halves": "half", "loaves": "loaf", "thieves": "thief", "calves": "calf", "elves": "elf", "scarves": "scarf",
    "hooves": "hoof", "selves": "self", "dwarves": "dwarf", "buses": "bus", "quizzes": "quiz", "geniuses": "genius",
    "viruses": "virus", "cactuses": "cactus", "octopuses": "octopus", "walruses": "walrus", "circuses": "circus",
    "campuses": "campus", "dice": "dice", "lice": "louse", "indices": "index", "matrices": "matrix",
    "phenomena": "phenomenon", "criteria": "criterion", "bacteria": "bacterium", "alumni": "alumnus",
    "canoes": "canoe", "shoes": "shoe", "toes": "toe", "oboes": "oboe", "hoes": "hoe", "foes": "foe",
    "horses": "horse", "houses": "house", "vases": "vase", "cases": "case", "roses": "rose", "noses": "nose",
    "purses": "purse", "nurses": "nurse", "bases": "base", "cheeses": "cheese", "blouses": "blouse",
    "niches": "niche", "caches": "cache", "mustaches": "mustache", "moustaches": "moustache", "avalanches": "avalanche",
    "headaches": "headache", "axes": "axe", "goes": "go", "tortoises": "tortoise", "porpoises": "porpoise",
    "lenses": "lens", "gases": "gas", "irises": "iris", "bonuses": "bonus", "sinuses": "sinus",
    "hippopotami": "hippopotamus",
}
INVARIANT = _words(
    """fish sheep deer moose salmon trout shrimp bison aircraft spacecraft hovercraft series species news
    swiss chassis corps offspring squid cod tuna clownfish goldfish swordfish catfish jellyfish starfish
    pike carp elk reindeer buffalo quail grouse cattle poultry"""
)
# Nouns ending in -ies whose singular ends in -ie, not -y.
IE_NOUNS = _words(
    """cookie movie pie tie zombie brownie smoothie hippie rookie goalie collie calorie prairie genie pixie beanie
    bootie birdie auntie veggie hoodie selfie budgie doggie kiddie lie"""
)
# -oes nouns whose singular keeps the e.
OES_KEEP_E = _words("shoe toe canoe oboe hoe foe floe sloe")
SINGULAR_S = ("ss", "us", "is", "ous", "ics")


def singular(word: str) -> str:
    """The singular of a lower-case English noun; words that do not look plural come back unchanged."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word in INVARIANT or word in PLURALIA or len(word) < 3 or not word.isalpha() and "-" not in word:
        return word
    if "-" in word:  # "t-shirts", "test-tubes": the last part carries the number
        head, _, tail = word.rpartition("-")
        return f"{head}-{singular(tail)}" if tail else word
    if word.endswith("is") and word[:-1] in NOUNS:
        return word[:-1]  # "broccolis", "kiwis": the stem is a known noun, so the -is is a plural
    if word.endswith(SINGULAR_S):
        return word
    if word.endswith("men") and word not in ("ramen", "omen", "specimen", "abdomen", "stamen", "hymen", "amen"):
        return word[:-3] + "man"
    if word.endswith("ies") and len(word) > 4:
        return word[:-1] if word[:-1] in IE_NOUNS else word[:-3] + "y"
    if word.endswith("ves"):
        return word[:-1]  # olives, gloves, doves, waves; the -f plurals are listed above
    if word.endswith("oes"):
        return word[:-1] if word[:-1] in OES_KEEP_E else word[:-2]
    if word.endswith(("ches", "shes", "sses", "xes", "zzes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def is_plural(word: str) -> bool:
    """Whether a lower-case noun is (or is used as) a plural: its singular differs, or it never has one."""
    if word in PLURALIA or word in ("people", "cattle", "poultry"):
        return True
    return singular(word) != word


def size_of(noun: str) -> float:
    """Drawn size prior (canvas fraction) for a singular noun phrase, looked up by its last word."""
    head = noun.split()[-1] if noun.split() else noun
    for size, words in SIZE_CLASSES.items():
        if noun in words or head in words:
            return size
    return DEFAULT_SIZE


def aspect_of(noun: str) -> float:
    """Width over height in pixels: standing things are tall, vehicles and furniture wide."""
    head = noun.split()[-1] if noun.split() else noun
    if noun in TALL or head in TALL:
        return 0.6
    if noun in WIDE or head in WIDE:
        return 1.6
    return 1.0


# -ing/-ed words that are nouns or name-making modifiers, not verbs: they neither end a phrase nor drop from a name.
NOUN_LIKE = _words(
    """building painting ceiling wedding pudding clothing railing awning ring string swing wing spring sling thing
    morning evening icing frosting stuffing filling topping seasoning lightning bedding siding sibling duckling
    gosling seedling earring offspring sapling darling dumpling herring stocking king viking shed bed sled seed
    reed weed steed speed bread red hundred sacred naked wicked rugged ragged jagged kindred landing pudding"""
)
# Multi-word names whose first word would otherwise be dropped as an adjective or participle.
COMPOUNDS = frozenset(alternatives(
    """hot air balloon|hot dog|ice cream|ice cream cone|top hat|golden retriever|red panda|polar bear|grand piano|
    high chair|rocking horse|rocking chair|vending machine|washing machine|sewing machine|swimming pool|rolling pin|
    parking meter|fire hydrant|teddy bear|stop sign|traffic light|traffic cone|street lamp|christmas tree|palm tree|
    sea turtle|black hole|ice floe|fire truck|fire engine|police car|race car|cotton candy|french fries|
    sleeping bag|dining table|blue whale|killer whale|great white shark|dew drop|compass rose|cuckoo clock|
    crystal ball|stained glass window|picket fence|light bulb|cherry blossom|cherry tree|rose bush|orange juice|
    hot chocolate|iced coffee|blue jay|white rabbit|black swan|paper plane|paper airplane|paper boat|glass jar|
    gold medal|silver medal|brass band|wooden spoon|little mermaid|snow globe|snowy owl|bald eagle|old man|
    old woman|baby carriage|baby stroller|baby bottle|lit candle|fried egg|flying saucer|rubber duck|toy car|
    toy train|toy soldier|stuffed animal|stuffed bear|running shoes|walking stick|shopping cart|shopping bag|
    cutting board|drawing board|frying pan|diving board|climbing wall|wedding cake|wedding dress"""
))
PARTS = _words(
    """chimney chimneys roof wheel wheels shelf shelves side sides top bottom surface edge handle lid leg legs tail
    head face back front base trunk screen corner corners branches page pages spine door doors window windows seat
    hand hands foot feet body"""
)
WEARABLES = _words(
    """hat cap helmet crown hood glasses sunglasses headband tiara beanie wig mask bandana headphones beret turban
    veil goggles scarf dress shirt t-shirt tshirt coat jacket cape suit uniform costume sweater hoodie robe gown
    apron armor armour boots shoes sneakers gloves jeans pants skirt kimono tuxedo overalls raincoat vest pajamas
    pyjamas bikini swimsuit necklace tie bowtie bow-tie sari cloak outfit clothes attire jumpsuit leggings shorts
    trousers blouse cardigan poncho mittens earrings bracelet sombrero fedora"""
)
# Owners that things are put on ("a desk with a laptop": the laptop sits on the desk) rather than inside.
SURFACES = _words(
    """table desk counter shelf tray plate platter stand pedestal dresser nightstand windowsill mantel mantelpiece
    bench cart board chessboard blanket rug tablecloth countertop workbench altar podium stage table-top"""
)
# What "the left side of the picture" refers to: the frame, not an object.
FRAME_WORDS = _words(
    """image picture photo photograph frame canvas scene composition view shot painting poster artwork illustration
    drawing page"""
)
SKY_SETTINGS = _words("sky skies air space heavens clouds")
LOW_SETTINGS = _words(
    """ground floor grass lawn sand snow water sea ocean lake river pond beach road street sidewalk pavement field
    meadow desert ice shore table-top carpet"""
)
WALL_SETTINGS = _words("wall walls")

# Nouns accepted without a determiner ("cat on a mat", "red apples and green pears").
NOUNS = frozenset().union(
    *SIZE_CLASSES.values(), SKY, GROUND, ANIMATE, TEXT_CARRIERS, HEADWEAR, WEARABLES, SITES, SETTINGS, TIME_WORDS,
    SURFACES, TALL, WIDE, FEATURES,
    _words(
        """apple pear grape melon watermelon pineapple coconut avocado kiwi mango strawberry blueberry raspberry
        cherry lemon lime orange banana carrot tomato potato onion pepper cucumber lettuce broccoli corn pumpkin
        bread cake pie cookie cupcake donut pizza burger sandwich sushi noodles ramen soup salad steak egg cheese
        coffee tea wine beer juice milk water soda chocolate candy popcorn pasta rice taco burrito croissant bagel
        muffin pancake waffle skewer skewers lantern lanterns lamp candle chandelier mirror clock vase pot plant
        cactus fern bonsai flower rose tulip daisy lily orchid sunflower lavender tree bush hedge vine ivy moss
        mushroom leaf log rock stone boulder pebble shell crystal gem diamond coin key lock chain rope ladder
        bucket barrel crate box bag basket suitcase umbrella kite balloon ball toy doll robot drone computer laptop
        phone camera television radio speaker guitar piano violin drum trumpet saxophone microphone book books
        newspaper magazine letter envelope pen pencil brush paintbrush easel canvas frame painting poster photo
        statue sculpture fountain bench swing slide seesaw sandbox sandcastle snowman bicycle motorcycle scooter
        skateboard car truck bus train tram plane airplane helicopter boat ship canoe kayak submarine rocket
        spaceship tractor wagon cart carriage sled horse pony donkey cow bull pig sheep goat chicken rooster duck
        goose swan turkey dog puppy cat kitten rabbit hamster mouse rat squirrel fox wolf bear panda koala lion
        tiger leopard cheetah jaguar elephant giraffe zebra rhino hippo monkey gorilla chimpanzee kangaroo camel
        deer moose elk bison buffalo owl eagle hawk falcon parrot penguin flamingo peacock pigeon crow raven
        sparrow robin hummingbird butterfly bee ant ladybug spider snail frog toad turtle tortoise lizard snake
        crocodile alligator dinosaur dragon unicorn fish goldfish shark whale dolphin octopus jellyfish crab
        lobster starfish seal otter walrus graffiti mural vending machine hydrant lamppost streetlight mailbox
        tent campfire fire fireplace stove oven fridge refrigerator sink bathtub toilet shower bed sofa couch
        chair armchair stool table desk shelf bookshelf cabinet dresser wardrobe door window curtain rug carpet
        pillow cushion blanket towel teapot teacup mug cup glass bottle jar plate bowl spoon fork knife chopsticks
        tray napkin candle gift present ribbon bow hat cap crown glasses scarf gloves boots shoes sneakers dress
        shirt jacket coat umbrella wallet watch ring necklace bracelet earring backpack purse knight wizard witch
        fairy elf dwarf giant ghost zombie vampire pirate ninja samurai cowboy astronaut alien robot cyborg
        soldier king queen prince princess baby child man woman boy girl person people student teacher doctor
        nurse chef farmer fisherman sailor pilot police firefighter musician artist dancer athlete player
        couple family crowd friends tower castle house cabin cottage barn church temple bridge lighthouse windmill
        skyscraper building hut igloo pyramid tunnel gate arch well pier dock fence wall road path trail river
        waterfall lake pond volcano mountain hill island cliff cave tree sun moon star planet comet cloud rainbow
        cube sphere cone cylinder pyramid block blocks dice domino puzzle chessboard pawn rook bishop"""
    ),
)


# Things sold, worn or used by the pair: "a pair of gloves" is one object named in the plural, not two gloves.
PAIRED = _words(
    """gloves mittens boots shoes sneakers socks slippers sandals stockings earrings skis chopsticks cufflinks
    skates heels loafers clogs flip-flops"""
)
# Colour and material words that also name a thing: at the end of a phrase they are its noun ("an orange orange",
# "a single rose", "a heavy brick"), before another noun a modifier ("an orange cat").
THING_WORDS = _words(
    """orange lime cherry plum peach rose lavender olive violet ruby coral amber pearl jade emerald sapphire
    chocolate brick stone glass crystal marble canvas straw ivory"""
)
# Words that, with "the", mean whatever was named last: "a paper airplane, the figure is tilted upwards".
GENERIC = _words("figure subject object item creature")
# General words that refer back to a more specific thing mentioned before: "a golden retriever ... the dog".
KINDS: dict[str, frozenset[str]] = {
    "vehicle": _words("car taxi cab bus truck van jeep suv limousine tractor pickup motorcycle scooter bicycle"),
    "car": _words("taxi cab jeep suv limousine sedan convertible coupe"),
    "truck": _words("pickup lorry"),
    "animal": _words(
        """dog puppy cat kitten horse pony cow sheep goat pig fox wolf bear lion tiger elephant giraffe zebra deer
        rabbit squirrel monkey retriever poodle terrier stallion mare foal hedgehog"""
    ),
    "dog": _words("puppy retriever poodle terrier labrador beagle bulldog spaniel collie dachshund husky corgi"),
    "cat": _words("kitten tabby"),
    "horse": _words("stallion mare foal pony"),
    "bird": _words(
        """sparrow robin eagle hawk falcon owl parrot pigeon crow raven seagull gull swan duck goose penguin
        flamingo peacock hummingbird finch canary jay swallow"""
    ),
    "flower": _words("rose tulip daisy lily orchid sunflower violet poppy peony"),
    "fruit": _words("apple pear orange lemon lime banana peach plum cherry mango"),
    "cup": _words("mug teacup"),
    "boat": _words("rowboat sailboat canoe kayak yacht dinghy"),
    "instrument": _words("guitar violin piano drum trumpet saxophone cello flute"),
    "tree": _words("oak pine maple birch willow palm"),
}


# The reverse: the general words each specific one falls under ("stallion" -> horse, animal).
KIND_OF: dict[str, frozenset[str]] = {
    word: frozenset(k for k, members in KINDS.items() if word in members)
    for word in frozenset().union(*KINDS.values())
}


def verb_form(word: str) -> str:
    """'s', 'ing' or 'ed' when a lower-case word looks like that form of a verb, else ''."""
    if word in NOUN_LIKE or word in COLOURS:
        return ""
    if word.endswith("ing") and len(word) > 5:
        return "ing"
    if word.endswith("ed") and len(word) > 4:
        return "ed"
    if word.endswith("s") and not word.endswith(SINGULAR_S):
        stems = (word[:-1], word[:-2] if word.endswith("es") else "", word[:-3] + "y" if word.endswith("ies") else "")
        if any(stem in VERB_STEMS for stem in stems if stem):
            return "s"
    return ""


def is_verbish(word: str) -> bool:
    return word in IRREGULAR_VERBS or word in VERB_STEMS or verb_form(word) != ""


def known_compound(words: list[str]) -> str:
    """The longest known compound noun that the lower-case ``words`` end with ("hot air balloon"), or ''."""
    for n in range(min(4, len(words)), 1, -1):
        tail = " ".join(words[-n:])
        if tail in COMPOUNDS:
            return tail
    return ""


def is_adjective(low: str) -> bool:
    if low in COLOURS or low in SIZES or low in MATERIALS or low in ADJECTIVES or low in INTENSIFIERS:
        return True
    head, _, tail = low.rpartition("-")
    # "mint-green", "rose-tinted", "front-loading", "child-like": a hyphenated word ending like an adjective
    return bool(head) and (tail in COLOURS or tail in ADJECTIVES or tail.endswith(_ADJECTIVE_ENDINGS))


_ADJECTIVE_ENDINGS = ("ed", "ing", "ish", "like", "less", "ful", "proof", "free", "sized", "shaped", "colored",
                      "coloured", "toned")


def article(word: str) -> str:
    low = word.lower()
    vowel = low[:1] in "aeiou" and not low.startswith(("uni", "use", "eu", "one", "uk"))
    return "an" if vowel or low.startswith(("hour", "honest", "heir")) else "a"
