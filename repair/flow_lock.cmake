# The flow lock (flow_lock.h): nf_tables through libnftnl + libmnl, no `nft` binary.
target_sources(seamless_repair PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/flow_lock.cc
  ${CMAKE_CURRENT_LIST_DIR}/nft_netlink.cc
  ${CMAKE_CURRENT_LIST_DIR}/nft_ruleset.cc
  ${CMAKE_CURRENT_LIST_DIR}/packet_hold.cc
)
target_link_libraries(seamless_repair PUBLIC PkgConfig::NFTNL)
