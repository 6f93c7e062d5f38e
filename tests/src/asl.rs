//! A Step Functions interpreter for the deployed restore-test definition: the states it uses (Task on
//! `arn:aws:states:::lambda:invoke` or a function ARN, Map, Choice, Wait, Pass, Succeed, Fail), JSONPath
//! input and output processing (InputPath, Parameters, ResultSelector, ResultPath, OutputPath), Retry and Catch,
//! as the Amazon States Language specifies them. moto's Step Functions records executions but cannot run a
//! function binary, so the tests run the definition the stack deployed through this, step by step, and never a
//! sequence of steps written in the test.
//!
//! Deliberate differences from the service, each harmless to what the tests prove: a Wait state and a retry's
//! interval do not sleep (they are recorded in the trace: the emulator's resources are ready at once); a Map runs
//! its items one after the other (MaxConcurrency bounds the service's parallelism, not the order of results).
//! Anything the definition uses that this does not implement (another resource, an intrinsic function, another
//! comparison) fails the execution with `Harness.Unimplemented` and its name, never silently.

use serde_json::{json, Map, Value};

/// An error as Step Functions names it: `Error` and `Cause`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    pub fn new(error: &str, cause: impl Into<String>) -> Self {
        Self {
            error: error.to_owned(),
            cause: cause.into(),
        }
    }

    fn unimplemented(what: &str) -> Self {
        Self::new(
            "Harness.Unimplemented",
            format!("the interpreter does not implement {what}"),
        )
    }

    fn as_value(&self) -> Value {
        json!({"Error": self.error, "Cause": self.cause})
    }
}

/// What the interpreter asks of the world: invoking a function, and a look at each state as it is entered.
pub trait Tasks {
    /// Invokes the function `function` (its name or ARN) with `payload`: its result, or its error as Lambda
    /// reports it to Step Functions (`errorType` as the error).
    fn invoke(&mut self, function: &str, payload: &Value) -> Result<Value, Failure>;

    /// Called as `state` (its path, e.g. `EachDatabase[0]/Verify`) is entered with `input`.
    fn entering(&mut self, _state: &str, _input: &Value) {}
}

/// One state entered, in order.
#[derive(Debug, Clone)]
pub struct Step {
    /// `State`, or `Map[i]/State` inside a Map's i-th iteration.
    pub path: String,
    pub kind: String,
    /// How it ended: `ok`, `retry <error>`, `caught <error>`, `failed <error>`.
    pub outcome: String,
}

/// An execution: its output or failure, and every state it entered.
#[derive(Debug)]
pub struct Execution {
    pub result: Result<Value, Failure>,
    pub trace: Vec<Step>,
}

impl Execution {
    /// The names of the states entered under `prefix` (e.g. `EachDatabase[0]/`), in order, prefix removed.
    pub fn states_under(&self, prefix: &str) -> Vec<String> {
        self.trace
            .iter()
            .filter_map(|s| s.path.strip_prefix(prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_owned)
            .collect()
    }
}

/// The most transitions one execution may take here before it is stopped as a loop.
const MAX_TRANSITIONS: usize = 2000;

/// Runs `definition` on `input`.
pub fn run(definition: &Value, input: Value, tasks: &mut impl Tasks) -> Execution {
    let mut run = Run {
        tasks,
        trace: Vec::new(),
    };
    let result = run.machine(definition, input, "");
    Execution {
        result,
        trace: run.trace,
    }
}

struct Run<'a, T: Tasks> {
    tasks: &'a mut T,
    trace: Vec<Step>,
}

impl<T: Tasks> Run<'_, T> {
    fn machine(&mut self, machine: &Value, input: Value, prefix: &str) -> Result<Value, Failure> {
        let states = machine["States"]
            .as_object()
            .ok_or_else(|| Failure::new("States.Runtime", "a machine without States"))?;
        let mut name = machine["StartAt"]
            .as_str()
            .ok_or_else(|| Failure::new("States.Runtime", "a machine without StartAt"))?
            .to_owned();
        let mut data = input;
        for _ in 0..MAX_TRANSITIONS {
            let state = states
                .get(&name)
                .ok_or_else(|| Failure::new("States.Runtime", format!("no state {name}")))?;
            let path = format!("{prefix}{name}");
            self.tasks.entering(&path, &data);
            let kind = state["Type"].as_str().unwrap_or("").to_owned();
            let step = self.trace.len();
            self.trace.push(Step {
                path: path.clone(),
                kind: kind.clone(),
                outcome: "ok".into(),
            });
            let (output, next) = match self.state(state, &kind, data, &path) {
                Ok(done) => done,
                Err(f) => {
                    self.trace[step].outcome = format!("failed {}", f.error);
                    return Err(f);
                }
            };
            if let Some(caught) = &next.caught {
                self.trace[step].outcome = format!("caught {caught}");
            }
            data = output;
            match next.state {
                Some(n) => name = n,
                None => return Ok(data),
            }
        }
        Err(Failure::new(
            "States.Runtime",
            format!("stopped after {MAX_TRANSITIONS} transitions (a loop that never ends?)"),
        ))
    }

    /// Runs one state: its output and where to go next (None: the machine ends with it).
    fn state(&mut self, state: &Value, kind: &str, raw: Value, path: &str) -> Result<(Value, Next), Failure> {
        let next = || Next::to(state["Next"].as_str());
        match kind {
            "Pass" => {
                let input = select(&raw, state.get("InputPath"))?;
                let result = match (state.get("Parameters"), state.get("Result")) {
                    (Some(p), _) => parameters(p, &input)?,
                    (None, Some(r)) => r.clone(),
                    (None, None) => input,
                };
                let out = place(raw, result, state.get("ResultPath"))?;
                Ok((select(&out, state.get("OutputPath"))?, next()))
            }
            "Wait" => {
                if state.get("Seconds").is_none() && state.get("SecondsPath").is_none() {
                    return Err(Failure::unimplemented("a Wait without Seconds"));
                }
                let input = select(&raw, state.get("InputPath"))?;
                Ok((select(&input, state.get("OutputPath"))?, next()))
            }
            "Choice" => {
                let input = select(&raw, state.get("InputPath"))?;
                for rule in state["Choices"].as_array().into_iter().flatten() {
                    if choose(rule, &input)? {
                        let out = select(&input, state.get("OutputPath"))?;
                        return Ok((out, Next::to(rule["Next"].as_str())));
                    }
                }
                match state["Default"].as_str() {
                    Some(d) => Ok((select(&input, state.get("OutputPath"))?, Next::to(Some(d)))),
                    None => Err(Failure::new(
                        "States.NoChoiceMatched",
                        format!("{path}: no choice matched"),
                    )),
                }
            }
            "Succeed" => Ok((select(&raw, state.get("OutputPath"))?, Next::end())),
            "Fail" => Err(Failure::new(
                state["Error"].as_str().unwrap_or("States.Fail"),
                state["Cause"].as_str().unwrap_or(""),
            )),
            "Task" | "Map" => self.retried(state, kind, raw, path),
            other => Err(Failure::unimplemented(&format!("a state of type {other}"))),
        }
    }

    /// A Task or Map: its work under Retry, then Catch, then result processing.
    fn retried(&mut self, state: &Value, kind: &str, raw: Value, path: &str) -> Result<(Value, Next), Failure> {
        let input = select(&raw, state.get("InputPath"))?;
        let mut attempts: Vec<u64> = vec![0; state["Retry"].as_array().map_or(0, Vec::len)];
        loop {
            let outcome = if kind == "Task" {
                self.task(state, &input)
            } else {
                self.map(state, &input, path)
            };
            let failure = match outcome {
                Ok(result) => {
                    let selected = match state.get("ResultSelector") {
                        Some(sel) => parameters(sel, &result)?,
                        None => result,
                    };
                    let out = place(raw, selected, state.get("ResultPath"))?;
                    let out = select(&out, state.get("OutputPath"))?;
                    let next = if state["End"].as_bool() == Some(true) {
                        Next::end()
                    } else {
                        Next::to(state["Next"].as_str())
                    };
                    return Ok((out, next));
                }
                Err(f) => f,
            };
            let retriers = state["Retry"].as_array().cloned().unwrap_or_default();
            if let Some(i) = retriers.iter().position(|r| matches(&r["ErrorEquals"], &failure.error)) {
                let max = retriers[i]["MaxAttempts"].as_u64().unwrap_or(3);
                if attempts[i] < max {
                    attempts[i] += 1;
                    self.trace.push(Step {
                        path: path.to_owned(),
                        kind: kind.to_owned(),
                        outcome: format!("retry {}", failure.error),
                    });
                    continue;
                }
            }
            for catcher in state["Catch"].as_array().into_iter().flatten() {
                if matches(&catcher["ErrorEquals"], &failure.error) {
                    let out = place(raw, failure.as_value(), catcher.get("ResultPath"))?;
                    let mut next = Next::to(catcher["Next"].as_str());
                    next.caught = Some(failure.error.clone());
                    return Ok((out, next));
                }
            }
            return Err(failure);
        }
    }

    fn task(&mut self, state: &Value, input: &Value) -> Result<Value, Failure> {
        let resource = state["Resource"].as_str().unwrap_or("");
        let params = match state.get("Parameters") {
            Some(p) => parameters(p, input)?,
            None => input.clone(),
        };
        if resource == "arn:aws:states:::lambda:invoke" {
            let function = params["FunctionName"]
                .as_str()
                .ok_or_else(|| Failure::new("States.Runtime", "lambda:invoke without FunctionName"))?;
            let payload = params.get("Payload").cloned().unwrap_or_else(|| input.clone());
            let result = self.tasks.invoke(function, &payload)?;
            Ok(json!({"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200}))
        } else if resource.starts_with("arn:aws:lambda:") {
            self.tasks.invoke(resource, &params)
        } else {
            Err(Failure::unimplemented(&format!("the resource {resource}")))
        }
    }

    fn map(&mut self, state: &Value, input: &Value, path: &str) -> Result<Value, Failure> {
        let items = match state.get("ItemsPath") {
            Some(p) => get(input, p.as_str().unwrap_or("$"))?,
            None => input.clone(),
        };
        let items = items
            .as_array()
            .ok_or_else(|| Failure::new("States.Runtime", format!("{path}: ItemsPath is not an array")))?
            .clone();
        let processor = state
            .get("ItemProcessor")
            .or_else(|| state.get("Iterator"))
            .ok_or_else(|| Failure::new("States.Runtime", format!("{path}: a Map without ItemProcessor")))?;
        let mut results = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let item = match state.get("ItemSelector").or_else(|| state.get("Parameters")) {
                Some(sel) => {
                    let context = json!({"Map": {"Item": {"Index": i, "Value": item}}});
                    parameters_with(sel, input, &context)?
                }
                None => item,
            };
            results.push(self.machine(processor, item, &format!("{path}[{i}]/"))?);
        }
        Ok(Value::Array(results))
    }
}

/// Where to go after a state.
struct Next {
    state: Option<String>,
    caught: Option<String>,
}

impl Next {
    fn to(state: Option<&str>) -> Self {
        Self {
            state: state.map(str::to_owned),
            caught: None,
        }
    }
    fn end() -> Self {
        Self {
            state: None,
            caught: None,
        }
    }
}

/// Whether `error` is named by a Retry's or Catch's `ErrorEquals` (`States.ALL` names every error but
/// `States.Runtime`, as in the service).
fn matches(names: &Value, error: &str) -> bool {
    names
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|n| n == error || (n == "States.ALL" && error != "States.Runtime" && error != "Harness.Unimplemented"))
}

/// The value at a reference path (`$`, `$.a.b`, `$.a[0].b`).
fn get(data: &Value, path: &str) -> Result<Value, Failure> {
    lookup(data, path)?.ok_or_else(|| Failure::new("States.Runtime", format!("the path {path} matches nothing")))
}

fn lookup(data: &Value, path: &str) -> Result<Option<Value>, Failure> {
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| Failure::new("States.Runtime", format!("{path} is not a reference path")))?;
    let mut cur = data;
    for part in rest.split('.').filter(|p| !p.is_empty()) {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, Some(i.trim_end_matches(']'))),
            None => (part, None),
        };
        if !key.is_empty() {
            match cur.get(key) {
                Some(v) => cur = v,
                None => return Ok(None),
            }
        }
        if let Some(i) = index {
            let i: usize = i
                .parse()
                .map_err(|_| Failure::unimplemented(&format!("the path {path}")))?;
            match cur.get(i) {
                Some(v) => cur = v,
                None => return Ok(None),
            }
        }
    }
    Ok(Some(cur.clone()))
}

/// InputPath or OutputPath: absent is `$`, null is `{}`.
fn select(data: &Value, path: Option<&Value>) -> Result<Value, Failure> {
    match path {
        None => Ok(data.clone()),
        Some(Value::Null) => Ok(json!({})),
        Some(Value::String(p)) => get(data, p),
        Some(other) => Err(Failure::new(
            "States.Runtime",
            format!("a path that is not text: {other}"),
        )),
    }
}

/// ResultPath: absent is `$` (the result replaces the input), null discards the result.
fn place(raw: Value, result: Value, path: Option<&Value>) -> Result<Value, Failure> {
    let path = match path {
        None => return Ok(result),
        Some(Value::Null) => return Ok(raw),
        Some(Value::String(p)) => p.as_str(),
        Some(other) => {
            return Err(Failure::new(
                "States.Runtime",
                format!("a ResultPath that is not text: {other}"),
            ))
        }
    };
    if path == "$" {
        return Ok(result);
    }
    let mut raw = raw;
    let keys: Vec<&str> = path.trim_start_matches("$.").split('.').collect();
    let mut cur = &mut raw;
    for (i, key) in keys.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let obj = cur.as_object_mut().expect("an object");
        if i == keys.len() - 1 {
            obj.insert((*key).to_owned(), result);
            break;
        }
        cur = obj.entry((*key).to_owned()).or_insert_with(|| json!({}));
    }
    Ok(raw)
}

/// A Parameters or ResultSelector template applied to `input`: keys ending `.$` take the value at their path.
fn parameters(template: &Value, input: &Value) -> Result<Value, Failure> {
    parameters_with(template, input, &Value::Null)
}

fn parameters_with(template: &Value, input: &Value, context: &Value) -> Result<Value, Failure> {
    match template {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                if let Some(name) = key.strip_suffix(".$") {
                    let path = value
                        .as_str()
                        .ok_or_else(|| Failure::new("States.Runtime", format!("{key} is not a path")))?;
                    let v = if let Some(ctx) = path.strip_prefix("$$") {
                        get(context, &format!("${ctx}"))?
                    } else if path.starts_with("States.") {
                        return Err(Failure::unimplemented(&format!("the intrinsic function in {key}")));
                    } else {
                        get(input, path)?
                    };
                    out.insert(name.to_owned(), v);
                } else {
                    out.insert(key.clone(), parameters_with(value, input, context)?);
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => Ok(Value::Array(
            items
                .iter()
                .map(|v| parameters_with(v, input, context))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other.clone()),
    }
}

/// One Choice rule (or a nested one inside And, Or, Not).
fn choose(rule: &Value, input: &Value) -> Result<bool, Failure> {
    if let Some(all) = rule.get("And").and_then(Value::as_array) {
        for r in all {
            if !choose(r, input)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = rule.get("Or").and_then(Value::as_array) {
        for r in any {
            if choose(r, input)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(not) = rule.get("Not") {
        return Ok(!choose(not, input)?);
    }
    let variable = rule["Variable"]
        .as_str()
        .ok_or_else(|| Failure::new("States.Runtime", format!("a choice without Variable: {rule}")))?;
    let value = lookup(input, variable)?;
    if let Some(present) = rule.get("IsPresent").and_then(Value::as_bool) {
        return Ok(value.is_some() == present);
    }
    let Some(value) = value else {
        return Err(Failure::new(
            "States.Runtime",
            format!("the choice's variable {variable} matches nothing"),
        ));
    };
    if let Some(s) = rule.get("StringEquals") {
        return Ok(value.is_string() && &value == s);
    }
    if let Some(b) = rule.get("BooleanEquals") {
        return Ok(value.is_boolean() && &value == b);
    }
    if let Some(n) = rule.get("NumericEquals").and_then(Value::as_f64) {
        return Ok(value.as_f64() == Some(n));
    }
    if let Some(null) = rule.get("IsNull").and_then(Value::as_bool) {
        return Ok(value.is_null() == null);
    }
    Err(Failure::unimplemented(&format!("the choice rule {rule}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Answer = Box<dyn FnMut(&str, &Value) -> Result<Value, Failure>>;

    struct Script {
        calls: Vec<(String, Value)>,
        answer: Answer,
    }

    impl Tasks for Script {
        fn invoke(&mut self, function: &str, payload: &Value) -> Result<Value, Failure> {
            self.calls.push((function.to_owned(), payload.clone()));
            (self.answer)(function, payload)
        }
    }

    fn machine() -> Value {
        json!({"StartAt": "Plan", "States": {
            "Plan": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "f", "Payload": {"action": "plan", "time.$": "$.time"}},
                "ResultSelector": {"tests.$": "$.Payload.tests"}, "Next": "Each"},
            "Each": {"Type": "Map", "ItemsPath": "$.tests", "ResultPath": "$.results", "End": true,
                "ItemProcessor": {"StartAt": "Start", "States": {
                    "Start": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "f", "Payload": {"action": "start", "db.$": "$.db"}},
                        "ResultSelector": {"test.$": "$.Payload"},
                        "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 2}],
                        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
                        "Next": "Ok?"},
                    "Ok?": {"Type": "Choice", "Choices": [{"Variable": "$.test.ok", "BooleanEquals": true, "Next": "Passed"}],
                        "Default": "Failed"},
                    "Passed": {"Type": "Pass", "Parameters": {"db.$": "$.test.db", "passed": true}, "End": true},
                    "Failed": {"Type": "Pass", "Parameters": {"passed": false, "error.$": "$.error"}, "End": true}
                }}}
        }})
    }

    #[test]
    fn a_map_runs_each_item_through_retry_catch_and_choice_and_places_results() {
        let mut flaky = 0;
        let mut tasks = Script {
            calls: Vec::new(),
            answer: Box::new(move |_, p| match (p["action"].as_str(), p["db"].as_str()) {
                (Some("plan"), _) => Ok(json!({"tests": [{"db": "a"}, {"db": "b"}, {"db": "c"}]})),
                (Some("start"), Some("a")) => Ok(json!({"db": "a", "ok": true})),
                (Some("start"), Some("b")) => {
                    flaky += 1;
                    if flaky < 3 {
                        Err(Failure::new("Lambda.ServiceException", "busy"))
                    } else {
                        Ok(json!({"db": "b", "ok": true}))
                    }
                }
                _ => Err(Failure::new("Lifeboat.Error", "no such database")),
            }),
        };
        let ex = run(&machine(), json!({"time": "t"}), &mut tasks);
        let out = ex.result.clone().unwrap();
        assert_eq!(
            out["results"],
            json!([{"db": "a", "passed": true}, {"db": "b", "passed": true},
                {"passed": false, "error": {"Error": "Lifeboat.Error", "Cause": "no such database"}}])
        );
        assert_eq!(
            out["tests"].as_array().map(Vec::len),
            Some(3),
            "ResultPath keeps the input"
        );
        // b: two retries then success; c: caught.
        assert_eq!(tasks.calls.len(), 1 + 1 + 3 + 1);
        assert_eq!(
            ex.states_under("Each[1]/"),
            ["Start", "Start", "Start", "Ok?", "Passed"]
        );
        assert!(ex
            .trace
            .iter()
            .any(|s| s.path == "Each[2]/Start" && s.outcome == "caught Lifeboat.Error"));
    }

    #[test]
    fn retries_run_out_and_an_uncaught_error_fails_the_execution() {
        let mut tasks = Script {
            calls: Vec::new(),
            answer: Box::new(|_, _| Err(Failure::new("Lambda.ServiceException", "down"))),
        };
        let ex = run(&machine(), json!({"time": "t"}), &mut tasks);
        assert_eq!(ex.result.unwrap_err().error, "Lambda.ServiceException");
        assert_eq!(tasks.calls.len(), 1, "Plan has no Retry");
    }

    #[test]
    fn what_is_not_implemented_fails_by_name() {
        let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [], "End": true}}});
        let mut tasks = Script {
            calls: Vec::new(),
            answer: Box::new(|_, _| Ok(json!({}))),
        };
        let err = run(&def, json!({}), &mut tasks).result.unwrap_err();
        assert_eq!(err.error, "Harness.Unimplemented");
        assert!(err.cause.contains("Parallel"), "{}", err.cause);
    }
}
