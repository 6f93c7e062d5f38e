//! The masking's SQL expressions (`{"sql": "..."}` rules), evaluated on the staging server without writing
//! anything: in a READ ONLY transaction with a statement timeout, on the administrator's connection to the
//! MAINTENANCE database, never the new one (the archive's functions, triggers and operators live there, and data
//! from a backup is code: none of it may run as the administrator).
//!
//! A batch of rows goes in as one text array per column and comes back in the same order:
//! `SELECT (<expr>)::text FROM unnest($1::text[], ...) WITH ORDINALITY AS t(<columns>, <n>) ORDER BY <n>`, so the
//! expression reads each column by its name, as text (the rule's documentation says so).
//!
//! The masking's rewriter calls [`SqlEval::eval`] from the stream's blocking thread; the connection is driven by
//! the runtime, so each call enters it through a captured [`tokio::runtime::Handle`].
//! Never: quotes a row's value in an error (only the SQLSTATE leaves; the server's message may end in a value).

use std::time::Duration;

use crate::mask::rewrite::SqlEval;
use crate::postgres::export::quote_ident;

/// How long one batch's expression may run.
pub const EVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Evaluates expressions on a connection to the staging server's maintenance database.
pub struct ReadOnlyEval {
    client: tokio_postgres::Client,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl std::fmt::Debug for ReadOnlyEval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyEval").finish_non_exhaustive()
    }
}

impl ReadOnlyEval {
    /// `client` must be connected to the maintenance database; `runtime` is the runtime that drives it.
    pub fn new(client: tokio_postgres::Client, runtime: tokio::runtime::Handle) -> Self {
        Self {
            client,
            runtime,
            timeout: EVAL_TIMEOUT,
        }
    }

    /// How long one batch may run (the default is [`EVAL_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The statement that evaluates `expression` over one array parameter per column, in the rows' order.
pub fn statement(columns: &[String], expression: &str) -> String {
    let ordinal = ordinal_name(columns);
    let arrays: Vec<String> = (1..=columns.len()).map(|i| format!("${i}::text[]")).collect();
    let names: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    format!(
        "SELECT ({expression})::text FROM unnest({}) WITH ORDINALITY AS t({}, {ordinal}) ORDER BY {ordinal}",
        arrays.join(", "),
        names.join(", "),
    )
}

/// A name for the row number that no column of the table has.
fn ordinal_name(columns: &[String]) -> String {
    let mut name = "lifeboat_row".to_owned();
    while columns.iter().any(|c| c == &name) {
        name.push('_');
    }
    quote_ident(&name)
}

impl SqlEval for ReadOnlyEval {
    fn eval(
        &mut self,
        table: &str,
        columns: &[String],
        expression: &str,
        rows: &[Vec<Option<String>>],
    ) -> Result<Vec<Option<String>>, String> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if columns.is_empty() || rows.iter().any(|r| r.len() != columns.len()) {
            return Err(format!(
                "an SQL expression on {table} was given rows that do not match its {} columns",
                columns.len()
            ));
        }
        let by_column: Vec<Vec<Option<&str>>> = (0..columns.len())
            .map(|i| rows.iter().map(|r| r[i].as_deref()).collect())
            .collect();
        let sql = statement(columns, expression);
        let timeout_ms = self.timeout.as_millis();
        let client = &mut self.client;
        let answered = self.runtime.block_on(async move {
            let tx = client.build_transaction().read_only(true).start().await?;
            tx.batch_execute(&format!("SET LOCAL statement_timeout = {timeout_ms}"))
                .await?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = by_column
                .iter()
                .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let out = tx.query(&sql, &params).await?;
            // Nothing was written; ending the transaction either way is the same.
            tx.rollback().await?;
            Ok::<_, tokio_postgres::Error>(out)
        });
        let out = answered.map_err(|e| failed(table, &e))?;
        if out.len() != rows.len() {
            return Err(format!(
                "an SQL expression on {table} gave {} values for {} rows",
                out.len(),
                rows.len()
            ));
        }
        out.iter()
            .map(|row| row.try_get::<_, Option<String>>(0))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("an SQL expression on {table} did not answer text"))
    }
}

/// The error of an expression: the SQLSTATE only, since the server's message may quote the value it choked on.
fn failed(table: &str, e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(code) => format!(
            "an SQL expression on {table} failed on the staging server (SQLSTATE {}; the message is withheld: \
             it may quote a row's value)",
            code.code()
        ),
        None => format!("an SQL expression on {table} could not be evaluated: the connection failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_column_is_an_array_and_the_rows_keep_their_order() {
        let columns = vec!["id".to_owned(), "Birth day".to_owned()];
        assert_eq!(
            statement(&columns, "left(\"Birth day\", 4)"),
            "SELECT (left(\"Birth day\", 4))::text FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS \
             t(\"id\", \"Birth day\", \"lifeboat_row\") ORDER BY \"lifeboat_row\""
        );
    }

    #[test]
    fn the_row_number_never_takes_a_columns_name() {
        let columns = vec!["lifeboat_row".to_owned(), "lifeboat_row_".to_owned()];
        assert!(statement(&columns, "1").ends_with("ORDER BY \"lifeboat_row__\""));
    }
}
