// What kubectl prints for each kind kedge serves: the column names and one
// row per object (kubectl's default printers, k8s.io/kubernetes
// pkg/printers/internalversion; `wide` adds -o wide's columns). One
// definition for the kedge CLI's tables and for the Table responses an API
// can serve.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <vector>

#include "resources.h"

namespace kedge::api {

std::vector<std::string> columns(const Resource& r, bool wide);
std::vector<std::string> row(const Resource& r, const boost::json::value& obj, bool wide);
// The object's age from metadata.creationTimestamp, as kubectl prints it
// ("45s", "12m", "5h", "3d"; "<unknown>" without one).
std::string age(const boost::json::value& obj);

}  // namespace kedge::api
