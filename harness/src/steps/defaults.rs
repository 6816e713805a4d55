//! Defaults of action parameters that scenario files may leave out.

pub(super) fn primary() -> String {
    "primary".into()
}
pub(super) fn self_name() -> String {
    "self".into()
}
pub(super) fn introspector() -> String {
    "introspector".into()
}
pub(super) fn agent() -> String {
    "agent".into()
}
pub(super) fn keyed_agent() -> String {
    "keyed_agent".into()
}
pub(super) fn calendar_scopes() -> Vec<String> {
    vec!["calendar.read".into(), "calendar.write".into()]
}
pub(super) fn hour() -> u64 {
    3600
}
pub(super) fn yes() -> bool {
    true
}
pub(super) fn one() -> u32 {
    1
}
pub(super) fn agenda_rs() -> String {
    "agenda_rs".into()
}
pub(super) fn agenda() -> String {
    "agenda".into()
}
