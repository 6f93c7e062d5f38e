//! The word lists the fakes draw from, written for Lifeboat (no list is copied from another project), and the
//! longest value each list can make, so the rules' check knows whether a fake fits a column's length limit.
//!
//! Never holds anything derived from data: the lists are constants.

pub(crate) const FIRST: [&str; 40] = [
    "Ada", "Bram", "Cleo", "Dario", "Edda", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Lucas", "Mira", "Nils",
    "Olga", "Pavel", "Quinn", "Rosa", "Soren", "Tilda", "Umar", "Vera", "Wim", "Xenia", "Yusuf", "Zora", "Amos", "Bea",
    "Cyril", "Dora", "Emil", "Fay", "Gideon", "Hana", "Ivo", "Juno", "Kai", "Lena", "Milo", "Nora",
];

pub(crate) const LAST: [&str; 40] = [
    "Abbott",
    "Birch",
    "Calder",
    "Dunmore",
    "Ellery",
    "Fairbank",
    "Garroway",
    "Holloway",
    "Ingram",
    "Jessup",
    "Kettering",
    "Lindqvist",
    "Marlowe",
    "Northcote",
    "Oakley",
    "Pemberton",
    "Quarry",
    "Rook",
    "Sandoval",
    "Thornbury",
    "Underhill",
    "Vantongeren",
    "Whitlock",
    "Yardley",
    "Zeller",
    "Ashgrove",
    "Brightwater",
    "Coldwell",
    "Dovecote",
    "Elmstead",
    "Fernsby",
    "Greyling",
    "Hartwell",
    "Ivesdale",
    "Juniper",
    "Kestrel",
    "Larkspur",
    "Millbrook",
    "Nettlefold",
    "Orchard",
];

pub(crate) const STREET: [&str; 24] = [
    "Acorn",
    "Beacon",
    "Cedar",
    "Dockside",
    "Elder",
    "Foundry",
    "Granary",
    "Harbour",
    "Ironstone",
    "Juniper",
    "Kiln",
    "Lantern",
    "Meadow",
    "Netherby",
    "Old Mill",
    "Pippin",
    "Quayside",
    "Rowan",
    "Saltmarsh",
    "Tannery",
    "Upland",
    "Willow",
    "Yew Tree",
    "Zephyr",
];

pub(crate) const SUFFIX: [&str; 8] = ["Street", "Road", "Lane", "Avenue", "Close", "Way", "Row", "Terrace"];

pub(crate) const CITY: [&str; 16] = [
    "Eastholm",
    "Westbridge",
    "Northmere",
    "Southport Vale",
    "Ashby Cross",
    "Brookfell",
    "Cindermoor",
    "Dunhaven",
    "Elmwick",
    "Fallowmere",
    "Glenrise",
    "Harrowgate Hill",
    "Ivybank",
    "Kingsmarsh",
    "Lowmoor",
    "Marshfield",
];

/// Plain words for free text and for the names in fake e-mail addresses.
pub(crate) const TEXT: [&str; 48] = [
    "amber", "brook", "cloud", "dune", "ember", "fern", "glade", "harbor", "island", "jade", "kettle", "lagoon",
    "meadow", "nimbus", "orchard", "pebble", "quartz", "river", "summit", "thicket", "upland", "valley", "willow",
    "yonder", "zenith", "anchor", "basil", "canyon", "delta", "estuary", "fjord", "granite", "heath", "inlet", "jetty",
    "knoll", "ledge", "marsh", "north", "oasis", "prairie", "quill", "ridge", "spruce", "tundra", "umber", "vista",
    "wharf",
];

const fn longest(words: &[&str]) -> usize {
    let mut i = 0;
    let mut max = 0;
    while i < words.len() {
        if words[i].len() > max {
            max = words[i].len();
        }
        i += 1;
    }
    max
}

/// The longest word of the name and text lists.
pub(crate) const LONGEST_WORD: usize = {
    let (a, b, c) = (longest(&FIRST), longest(&LAST), longest(&TEXT));
    let ab = if a > b { a } else { b };
    if ab > c {
        ab
    } else {
        c
    }
};

/// The longest fake address: `9999 <street> <suffix>, <city>`.
pub(crate) const LONGEST_ADDRESS: usize = 4 + 1 + longest(&STREET) + 1 + longest(&SUFFIX) + 2 + longest(&CITY);

/// The shortest free-text fake, in characters; longer values keep their length.
pub(crate) const TEXT_MIN: usize = 8;
