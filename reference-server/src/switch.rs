//! Named switches that change how the hub answers: [`crate::fault::Fault`]s,
//! which break one requirement each, and [`crate::variant::Variant`]s, which
//! take another answer a standard allows. Both are named on the command line
//! in kebab-case and described by their doc comment, so one macro declares
//! them and one set type holds the ones switched on.

use std::collections::BTreeSet;

/// Declares a switch enum: its variants with their stable names, `ALL`,
/// `name()`, `description()` (the doc comment), `Display` and `FromStr`.
macro_rules! switches {
    (
        $(#[doc = $enum_doc:literal])* $enum:ident, $kind:literal;
        $( $(#[doc = $doc:literal])* $variant:ident => $name:literal, )*
    ) => {
        $(#[doc = $enum_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $enum {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl $enum {
            /// Every switch of this kind, in declaration order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant,)*];

            /// The stable kebab-case name used on the command line and in scenario files.
            pub fn name(self) -> &'static str {
                match self { $($enum::$variant => $name,)* }
            }

            /// The one-line description taken from the doc comment.
            pub fn description(self) -> &'static str {
                match self { $($enum::$variant => concat!($($doc),*).trim_ascii(),)* }
            }
        }

        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $enum {
            type Err = $crate::switch::UnknownSwitch;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $enum::ALL
                    .iter()
                    .copied()
                    .find(|f| f.name() == s)
                    .ok_or_else(|| $crate::switch::UnknownSwitch {
                        kind: $kind,
                        name: s.to_owned(),
                        known: $enum::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
                    })
            }
        }
    };
}
pub(crate) use switches;

/// The name was not one the hub knows.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} `{name}`; known: {known}")]
pub struct UnknownSwitch {
    pub kind: &'static str,
    pub name: String,
    pub known: String,
}

/// The switches of one kind a running hub has on.
#[derive(Debug, Clone)]
pub struct Switches<T: Ord>(BTreeSet<T>);

impl<T: Ord> Default for Switches<T> {
    fn default() -> Self {
        Switches(BTreeSet::new())
    }
}

impl<T: Ord + Copy> Switches<T> {
    pub fn new(switches: impl IntoIterator<Item = T>) -> Self {
        Switches(switches.into_iter().collect())
    }

    pub fn on(&self, switch: T) -> bool {
        self.0.contains(&switch)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.0.iter().copied()
    }
}
