//! Pure transcript code: Claude's stream-json lines in, Paperclip's result out. Never fails on a line.

pub mod event;
pub mod outcome;
pub mod parse;
