// Fault injection for graft's kill tests. With GRAFT_FAULT=NAME or
// GRAFT_FAULT=NAME:N in the environment, graft kills itself (SIGKILL, as an
// operator's `kill -9` or the OOM killer would) the Nth time (default: the
// first) it passes the point NAME. The points sit between the steps of
// apply and revert that change the target, so a test can stop graft at
// every step of the write protocol, deterministically, and check that the
// target survives and that the next graft invocation repairs it.
// Without the variable, a point costs one branch.
#pragma once

namespace graft {

void fault_point(const char* name);

}  // namespace graft
