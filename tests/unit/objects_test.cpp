// Strategic merge patches and API defaults of Kubernetes objects
// (plugins/common/patch.h, defaults.h).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "defaults.h"
#include "patch.h"

namespace {

namespace json = boost::json;
using kedge::patch::strategic_merge;

json::value smp(const char* target, const char* patch, const std::string& kind = "Pod") {
  json::value out;
  kedge::Status s = strategic_merge(json::parse(target), json::parse(patch), kind, out);
  EXPECT_TRUE(s) << s.message();
  return out;
}

TEST(StrategicMerge, AKubeletStatusPatchMergesConditionsByType) {
  // What the kubelet's status manager sends: only the changed condition,
  // with the order of all of them.
  auto out = smp(
      R"({"metadata":{"name":"p"},"status":{"phase":"Pending","conditions":[
            {"type":"Initialized","status":"True"},{"type":"Ready","status":"False"},
            {"type":"PodScheduled","status":"True"}]}})",
      R"({"metadata":{"uid":"u1"},"status":{
            "$setElementOrder/conditions":[{"type":"Initialized"},{"type":"Ready"},
              {"type":"ContainersReady"},{"type":"PodScheduled"}],
            "conditions":[{"type":"Ready","status":"True"},{"type":"ContainersReady","status":"True"}],
            "containerStatuses":[{"name":"main","ready":true}],"phase":"Running",
            "podIPs":[{"ip":"10.0.0.5"}]}})");
  auto& conds = out.at("status").at("conditions").as_array();
  ASSERT_EQ(conds.size(), 4u);
  EXPECT_EQ(conds[0].at("type"), "Initialized");
  EXPECT_EQ(conds[1].at("type"), "Ready");
  EXPECT_EQ(conds[1].at("status"), "True");
  EXPECT_EQ(conds[2].at("type"), "ContainersReady");
  EXPECT_EQ(conds[3].at("type"), "PodScheduled");
  EXPECT_EQ(out.at("status").at("phase"), "Running");
  EXPECT_EQ(out.at("metadata").at("name"), "p");
  EXPECT_FALSE(out.at("status").as_object().contains("$setElementOrder/conditions"));
}

TEST(StrategicMerge, ListsWithoutAMergeKeyAreReplaced) {
  auto out = smp(R"({"status":{"containerStatuses":[{"name":"a"},{"name":"b"}]}})",
                 R"({"status":{"containerStatuses":[{"name":"b","ready":true}]}})");
  EXPECT_EQ(out.at("status").at("containerStatuses").as_array().size(), 1u);
  // A kind with no table merges as JSON merge patch does: lists replaced.
  auto crd = smp(R"({"spec":{"properties":[{"name":"a"}]}})",
                 R"({"spec":{"properties":[{"name":"b"}]}})", "Device");
  EXPECT_EQ(crd.at("spec").at("properties").as_array().size(), 1u);
  EXPECT_EQ(crd.at("spec").at("properties").at(0).at("name"), "b");
}

TEST(StrategicMerge, ContainersMergeByNameAndDirectivesWork) {
  auto out = smp(
      R"({"spec":{"containers":[{"name":"a","image":"x:1","env":[{"name":"A","value":"1"}]},
                                {"name":"b","image":"y:1"}],
                  "volumes":[{"name":"v","emptyDir":{}}]},
          "metadata":{"finalizers":["f1"],"labels":{"k":"v","gone":"x"}}})",
      R"({"spec":{"containers":[{"name":"a","image":"x:2","env":[{"name":"B","value":"2"}]},
                                {"name":"b","$patch":"delete"}],
                  "volumes":[{"$patch":"replace"},{"name":"w","hostPath":{"path":"/w"}}]},
          "metadata":{"finalizers":["f2"],"$deleteFromPrimitiveList/finalizers":["f1"],
                      "labels":{"gone":null}}})");
  auto& cs = out.at("spec").at("containers").as_array();
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].at("image"), "x:2");
  EXPECT_EQ(cs[0].at("env").as_array().size(), 2u);
  auto& vs = out.at("spec").at("volumes").as_array();
  ASSERT_EQ(vs.size(), 1u);
  EXPECT_EQ(vs[0].at("name"), "w");
  EXPECT_EQ(out.at("metadata").at("finalizers"), json::parse(R"(["f2"])"));
  EXPECT_FALSE(out.at("metadata").at("labels").as_object().contains("gone"));
  // $patch: replace on a map, and $retainKeys.
  auto r = smp(R"({"spec":{"nodeSelector":{"a":"1","b":"2"}}})",
               R"({"spec":{"nodeSelector":{"$patch":"replace","c":"3"}}})");
  EXPECT_EQ(r.at("spec").at("nodeSelector"), json::parse(R"({"c":"3"})"));
  auto k = smp(R"({"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}})",
               R"({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}})", "Deployment");
  EXPECT_EQ(k.at("spec").at("strategy"), json::parse(R"({"type":"Recreate"})"));
}

TEST(StrategicMerge, BadDirectivesAreNamed) {
  json::value out;
  auto s =
      strategic_merge(json::parse(R"({"spec":{}})"),
                      json::parse(R"({"spec":{"nodeSelector":{"$patch":"explode"}}})"), "Pod", out);
  EXPECT_FALSE(s);
  EXPECT_EQ(s.message(), "spec.nodeSelector: $patch: 'explode' is not replace, delete or merge");
  auto s2 = strategic_merge(json::parse(R"({"spec":{"containers":[]}})"),
                            json::parse(R"({"spec":{"containers":["x"]}})"), "Pod", out);
  EXPECT_FALSE(s2);
  EXPECT_EQ(s2.message(), "spec.containers: elements of this list are objects merged by 'name'");
}

TEST(JsonMerge, NullDeletesAndListsReplace) {
  auto out = kedge::patch::json_merge(json::parse(R"({"a":1,"b":{"c":2,"d":3},"l":[1,2]})"),
                                      json::parse(R"({"a":null,"b":{"c":5},"l":[3]})"));
  EXPECT_EQ(out, json::parse(R"({"b":{"c":5,"d":3},"l":[3]})"));
}

TEST(Defaults, APodGetsWhatKubeApiserverAdds) {
  auto pod = json::parse(R"({"kind":"Pod","metadata":{"name":"p"},"spec":{
      "containers":[{"name":"a","image":"busybox","ports":[{"containerPort":80}],
                     "readinessProbe":{"httpGet":{"port":80}}},
                    {"name":"b","image":"reg:5000/x:1.2","imagePullPolicy":"Never"},
                    {"name":"c","image":"x:latest"}],
      "volumes":[{"name":"c","configMap":{"name":"c1"}},{"name":"s","secret":{"secretName":"s1",
                 "defaultMode":256}}],
      "tolerations":[{"key":"node.kubernetes.io/unreachable","operator":"Exists",
                      "effect":"NoExecute","tolerationSeconds":60}]}})");
  kedge::defaults::apply("Pod", pod);
  auto& spec = pod.at("spec");
  EXPECT_EQ(spec.at("restartPolicy"), "Always");
  EXPECT_EQ(spec.at("dnsPolicy"), "ClusterFirst");
  EXPECT_EQ(spec.at("schedulerName"), "default-scheduler");
  EXPECT_EQ(spec.at("terminationGracePeriodSeconds"), 30);
  EXPECT_EQ(spec.at("enableServiceLinks"), true);
  auto& cs = spec.at("containers").as_array();
  EXPECT_EQ(cs[0].at("imagePullPolicy"), "Always");  // no tag
  EXPECT_EQ(cs[1].at("imagePullPolicy"), "Never");   // set: kept
  EXPECT_EQ(cs[2].at("imagePullPolicy"), "Always");  // :latest
  EXPECT_EQ(cs[0].at("terminationMessagePath"), "/dev/termination-log");
  EXPECT_EQ(cs[0].at("ports").at(0).at("protocol"), "TCP");
  EXPECT_EQ(cs[0].at("readinessProbe").at("periodSeconds"), 10);
  EXPECT_EQ(cs[0].at("readinessProbe").at("httpGet").at("scheme"), "HTTP");
  EXPECT_EQ(spec.at("volumes").at(0).at("configMap").at("defaultMode"), 420);
  EXPECT_EQ(spec.at("volumes").at(1).at("secret").at("defaultMode"), 256);
  // The admission plugin's tolerations, without doubling one the pod has.
  auto& tol = spec.at("tolerations").as_array();
  ASSERT_EQ(tol.size(), 2u);
  EXPECT_EQ(tol[0].at("tolerationSeconds"), 60);
  EXPECT_EQ(tol[1].at("key"), "node.kubernetes.io/not-ready");
  EXPECT_EQ(tol[1].at("tolerationSeconds"), 300);
  EXPECT_EQ(pod.at("status").at("phase"), "Pending");
  // Applying them again changes nothing.
  auto again = pod;
  kedge::defaults::apply("Pod", again);
  EXPECT_EQ(again, pod);
  // A tag on a registry with a port is a tag, the port is not.
  auto p2 = json::parse(R"({"spec":{"containers":[{"name":"a","image":"reg:5000/x"}]}})");
  kedge::defaults::apply("Pod", p2);
  EXPECT_EQ(p2.at("spec").at("containers").at(0).at("imagePullPolicy"), "Always");
}

}  // namespace
