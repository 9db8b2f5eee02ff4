#include "kedge/metrics.h"

#include <gtest/gtest.h>

namespace kedge {
namespace {

TEST(Metrics, PrometheusTextFormat) {
  MetricsRegistry r;
  r.counter("kedge_b_total", "B things", {{"module", "x"}}).inc(3);
  r.counter("kedge_b_total", "B things", {{"module", "y\"q\\"}}).inc();
  r.gauge("kedge_a", "An \\ gauge\nwith lines").set(-2);
  EXPECT_EQ(r.prometheus_text(),
            "# HELP kedge_a An \\\\ gauge\\nwith lines\n"
            "# TYPE kedge_a gauge\n"
            "kedge_a -2\n"
            "# HELP kedge_b_total B things\n"
            "# TYPE kedge_b_total counter\n"
            "kedge_b_total{module=\"x\"} 3\n"
            "kedge_b_total{module=\"y\\\"q\\\\\"} 1\n");
}

TEST(Metrics, SameNameAndLabelsIsTheSameSeries) {
  MetricsRegistry r;
  Counter& a = r.counter("c_total", "h", {{"k", "v"}});
  Counter& b = r.counter("c_total", "h", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  a.inc(2);
  EXPECT_EQ(b.value(), 2u);
}

TEST(Metrics, BadNamesAndTypeClashesThrow) {
  MetricsRegistry r;
  EXPECT_THROW(r.counter("1bad", "h"), std::invalid_argument);
  EXPECT_THROW(r.counter("ok_total", "h", {{"bad-label", "v"}}), std::invalid_argument);
  r.counter("m", "h");
  EXPECT_THROW(r.gauge("m", "h"), std::invalid_argument);
}

}  // namespace
}  // namespace kedge
