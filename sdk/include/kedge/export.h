// Symbol visibility for kedge libraries and plugins. Everything is built with
// -fvisibility=hidden; only what is marked here is exported.
#pragma once

#define KEDGE_EXPORT __attribute__((visibility("default")))
