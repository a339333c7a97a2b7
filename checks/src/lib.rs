//! Repository and deployment checks, in one test binary: what must agree across the repository
//! and with AWS, not a behaviour of the library. `template.yaml` against the route table and the
//! configuration (`template`), its IAM policies against the AWS calls the code really makes
//! (`iam_calls`), the `events/` files through the handlers (`lambda_events`), the alarms and
//! dashboard against the metrics the code emits (`operations`), every function binary under a
//! Lambda runtime, as built for Lambda (`lambda_runtime`), and the documentation's code snippets
//! against the code they are taken from (`snippets`). `scripts/test` runs
//! them with the emulator and the Lambda builds they need.

#[cfg(test)]
mod iam_calls;
#[cfg(test)]
mod lambda_events;
#[cfg(test)]
mod lambda_runtime;
#[cfg(test)]
mod operations;
#[cfg(test)]
mod snippets;
#[cfg(test)]
mod template;
