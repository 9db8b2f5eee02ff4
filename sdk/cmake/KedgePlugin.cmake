# kedge_add_plugin(<target> <plugin-name> <sources>...)
# Builds a kedge plugin: a MODULE library named libkedge_<plugin-name>.so,
# with hidden symbol visibility (only the entry point is exported), linked
# against kedge::sdk.
function(kedge_add_plugin target name)
  add_library(${target} MODULE ${ARGN})
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME kedge_${name}
    PREFIX lib
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(TARGET kedge_sdk)
    target_link_libraries(${target} PRIVATE kedge_sdk)
  else()
    target_link_libraries(${target} PRIVATE kedge::sdk)
  endif()
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
  if(DEFINED KEDGE_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${KEDGE_PLUGIN_OUTPUT_DIR})
  endif()
endfunction()

# kedge_add_mapper(<target> <mapper-name> <sources>...)
# Builds a mapper written with the Mapper SDK (KEDGE_MAPPER) both ways: the
# plugin <target> (libkedge_<mapper-name>.so, run inside the edge agent) and
# the standalone executable <target>_standalone (kedge-<mapper-name>, a
# separate process speaking DMI over gRPC). Only the executable links gRPC:
# the plugin maps none of it.
function(kedge_add_mapper target name)
  if(TARGET kedge_mapper)
    set(mapper_lib kedge_mapper)
    set(standalone_lib kedge_mapper_standalone)
  else()
    set(mapper_lib kedge::mapper)
    set(standalone_lib kedge::mapper_standalone)
  endif()
  kedge_add_plugin(${target} ${name} ${ARGN})
  target_link_libraries(${target} PRIVATE ${mapper_lib})
  add_executable(${target}_standalone ${ARGN})
  set_target_properties(${target}_standalone PROPERTIES OUTPUT_NAME kedge-${name}
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  target_compile_definitions(${target}_standalone PRIVATE KEDGE_MAPPER_STANDALONE)
  target_link_libraries(${target}_standalone PRIVATE ${standalone_lib})
endfunction()
