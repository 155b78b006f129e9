//! The queries a pull sends: for each arm, what the plan reads (uploads, critical errors, the
//! histograms' buckets and sums), each a selector with the arm's label added.

use super::PrometheusSource;
use super::selector::{Matcher, Selector};
use crate::domain::units::Span;
use serde::{Deserialize, Serialize};

/// Which arm a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Treatment,
    Control,
}

/// What a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reads {
    Uploads,
    Critical,
    LatencyBuckets,
    LatencySum,
    MemoryBuckets,
    MemorySum,
}

/// One query Rampart sends: a range selector of raw samples, evaluated at the span's end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub arm: Arm,
    pub reads: Reads,
    /// The selector without its range (`uploads_total{job="upload",arm="treatment"}`).
    pub selector: String,
}

impl Query {
    /// The PromQL text for samples in `(at - range, at]`.
    pub fn text(&self, range: Span) -> String {
        format!("{}[{}s]", self.selector, range.secs().max(1))
    }
}

impl PrometheusSource {
    /// The queries one pull sends, two arms by what the plan reads. Only for a section whose
    /// [`PrometheusSource::problems`] are none.
    pub fn queries(&self) -> Vec<Query> {
        let mut out = Vec::new();
        for arm in [Arm::Treatment, Arm::Control] {
            let value = match arm {
                Arm::Treatment => &self.treatment,
                Arm::Control => &self.control,
            };
            let with_arm = |text: &str, suffix: &str| {
                let mut s = Selector::parse(text).expect("checked when the plan was read");
                // A histogram named by its base or by its `_bucket` series.
                if let Some(name) = s.name.as_mut().filter(|_| !suffix.is_empty()) {
                    *name = format!("{}{suffix}", name.strip_suffix("_bucket").unwrap_or(name));
                }
                s.matchers.push(Matcher { label: self.arm_label.clone(), op: "=".into(), value: value.clone() });
                s.to_string()
            };
            out.push(Query { arm, reads: Reads::Uploads, selector: with_arm(&self.uploads, "") });
            if let Some(c) = &self.critical {
                out.push(Query { arm, reads: Reads::Critical, selector: with_arm(c, "") });
            }
            if let Some(l) = &self.latency {
                out.push(Query { arm, reads: Reads::LatencyBuckets, selector: with_arm(l, "_bucket") });
                out.push(Query { arm, reads: Reads::LatencySum, selector: with_arm(l, "_sum") });
            }
            if let Some(m) = &self.memory {
                out.push(Query { arm, reads: Reads::MemoryBuckets, selector: with_arm(m, "_bucket") });
                out.push(Query { arm, reads: Reads::MemorySum, selector: with_arm(m, "_sum") });
            }
        }
        out
    }
}
