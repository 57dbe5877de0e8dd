//! The only module that imports napi: converts JS in, calls [`crate::run`], converts the result out.
