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
