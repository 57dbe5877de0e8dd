//! Converts the JS `ctx` of `execute(ctx)` into a [`RunRequest`] and a [`JsSink`], and words
//! every wrong shape as `ctx.<path> must be <type>, got <type>`. Missing optional fields and
//! `null` read as absent; `config` and `context` must hold only JSON data.

use napi::bindgen_prelude::{FromNapiValue, Object, Unknown};
use napi::{JsValue, ValueType};
use serde_json::Value;

use super::callbacks::JsSink;
use crate::plan::{Agent, RunRequest, Runtime};

/// Why a `ctx` cannot become a run, ready to show the operator.
pub(super) type Invalid = String;

/// Reads everything `execute` needs from `ctx`.
///
/// # Errors
/// The first field with a wrong type, named by its path (`ctx.agent.id must be a string, got
/// number`), or `ctx` itself when it is not an object.
pub(super) fn convert(ctx: Unknown<'_>) -> Result<(RunRequest, JsSink), Invalid> {
    let ctx = Fields {
        object: required(Some(ctx), "ctx", OBJECT)?,
        path: "ctx",
    };
    let run_id = ctx.required("runId", STRING)?;
    let agent = Fields {
        object: ctx.required("agent", OBJECT)?,
        path: "ctx.agent",
    };
    let runtime = ctx.optional("runtime", OBJECT)?.map(|object| Fields {
        object,
        path: "ctx.runtime",
    });
    let req = RunRequest {
        run_id,
        agent: Agent {
            id: agent.required("id", STRING)?,
            company_id: agent.required("companyId", STRING)?,
            name: agent.optional("name", STRING)?.unwrap_or_default(),
        },
        runtime: match runtime {
            None => Runtime::default(),
            Some(runtime) => Runtime {
                session_id: runtime.optional("sessionId", STRING)?,
                session_params: runtime.json("sessionParams")?,
                task_key: runtime.optional("taskKey", STRING)?,
            },
        },
        config: ctx.json("config")?.unwrap_or_else(empty_object),
        context: ctx.json("context")?.unwrap_or_else(empty_object),
        auth_token: ctx.optional("authToken", STRING)?,
    };
    let sink = JsSink {
        on_log: ctx.required("onLog", FUNCTION)?,
        on_meta: ctx.optional("onMeta", FUNCTION)?,
        on_dispatch: ctx.optional("onDispatch", FUNCTION)?,
    };
    Ok((req, sink))
}

/// Reads `ctx.config` of `testEnvironment(ctx)` (an empty object when absent).
///
/// # Errors
/// `ctx` is not an object, or `ctx.config` is not an object of JSON data, named by path.
pub(super) fn environment_config(ctx: Unknown<'_>) -> Result<Value, Invalid> {
    let ctx = Fields {
        object: required(Some(ctx), "ctx", OBJECT)?,
        path: "ctx",
    };
    Ok(ctx.json("config")?.unwrap_or_else(empty_object))
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A JS object and its path in `ctx`, read field by field.
struct Fields<'env> {
    object: Object<'env>,
    path: &'static str,
}

impl<'env> Fields<'env> {
    /// `object[key]` (`None` when undefined) and its path.
    fn get(&self, key: &str) -> Result<(Option<Unknown<'env>>, String), Invalid> {
        let path = format!("{}.{key}", self.path);
        match self.object.get::<Unknown>(key) {
            Ok(value) => Ok((value, path)),
            Err(e) => Err(format!("{path} could not be read: {}", e.reason)),
        }
    }

    fn required<T: FromNapiValue>(&self, key: &str, expected: Expected) -> Result<T, Invalid> {
        let (value, path) = self.get(key)?;
        required(value, &path, expected)
    }

    fn optional<T: FromNapiValue>(
        &self,
        key: &str,
        expected: Expected,
    ) -> Result<Option<T>, Invalid> {
        let (value, path) = self.get(key)?;
        optional(value, &path, expected)
    }

    /// An optional object of JSON data, converted key by key so an error names the key that
    /// holds the bad value.
    fn json(&self, key: &str) -> Result<Option<Value>, Invalid> {
        let (value, path) = self.get(key)?;
        let Some(object) = optional::<Object>(value, &path, OBJECT)? else {
            return Ok(None);
        };
        let keys =
            Object::keys(&object).map_err(|e| format!("{path} could not be read: {}", e.reason))?;
        let mut map = serde_json::Map::with_capacity(keys.len());
        for key in keys {
            let value = object.get::<Value>(&key).map_err(|e| {
                format!(
                    "{path}.{key} is not JSON data ({}); config and context may hold only JSON \
                     data: no functions, symbols, cycles or nesting deeper than 128 levels",
                    e.reason
                )
            })?;
            if let Some(value) = value {
                map.insert(key, value);
            }
        }
        Ok(Some(Value::Object(map)))
    }
}

/// The type of `value` as a JS programmer would name it (`typeof`, plus `null` and `array`).
fn kind(value: Option<&Unknown<'_>>) -> &'static str {
    let Some(value) = value else {
        return "undefined";
    };
    match value.get_type() {
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => "array",
        Ok(ValueType::Object) => "object",
        Ok(ValueType::Null) => "null",
        Ok(ValueType::Undefined) => "undefined",
        Ok(ValueType::Boolean) => "boolean",
        Ok(ValueType::Number) => "number",
        Ok(ValueType::String) => "string",
        Ok(ValueType::Symbol) => "symbol",
        Ok(ValueType::Function) => "function",
        Ok(ValueType::BigInt) => "bigint",
        Ok(ValueType::External) => "external",
        Ok(ValueType::Unknown) | Err(_) => "an unknown type",
    }
}

/// A JS type a field must have: its [`kind`] and how messages name it.
#[derive(Clone, Copy)]
struct Expected {
    kind: &'static str,
    noun: &'static str,
}

const STRING: Expected = Expected {
    kind: "string",
    noun: "a string",
};
const OBJECT: Expected = Expected {
    kind: "object",
    noun: "an object",
};
const FUNCTION: Expected = Expected {
    kind: "function",
    noun: "a function",
};

/// `value` as a `T`, which it must be.
fn required<T: FromNapiValue>(
    value: Option<Unknown<'_>>,
    path: &str,
    expected: Expected,
) -> Result<T, Invalid> {
    match &value {
        Some(v) if kind(Some(v)) == expected.kind => {
            // SAFETY: a live value of this env, of the JS type `T` converts from (checked above).
            unsafe { T::from_napi_value(v.value().env, v.raw()) }
                .map_err(|e| format!("{path} could not be read: {}", e.reason))
        }
        _ => Err(format!(
            "{path} must be {}, got {}",
            expected.noun,
            kind(value.as_ref())
        )),
    }
}

/// `value` as a `T`, or `None` when it is `null` or `undefined`.
fn optional<T: FromNapiValue>(
    value: Option<Unknown<'_>>,
    path: &str,
    expected: Expected,
) -> Result<Option<T>, Invalid> {
    match kind(value.as_ref()) {
        "null" | "undefined" => Ok(None),
        found if found == expected.kind => required(value, path, expected).map(Some),
        found => Err(format!(
            "{path} must be {}, null or undefined, got {found}",
            expected.noun
        )),
    }
}
