// graft revert: drives the removal of one patch from a process (under a
// per-thread transition, the stop model, or the apply in progress).
#include "common/clock.h"
#include "common/error.h"
#include "common/realtime_priority.h"
#include "common/file.h"
#include "loader/callbacks.h"
#include "loader/footprint.h"
#include "loader/loaded_objects.h"
#include "loader/operations.h"
#include "loader/recovery.h"
#include "loader/revert_during_transition.h"
#include "consistency/per_thread_model.h"
#include "loader/switch_method.h"
#include "process/proc_status.h"
#include "loader/target_session.h"
#include "process/thread_syscall.h"
#include "process/tracing_thread.h"

namespace graft {

namespace {

const PatchRecord& find_record(const std::vector<PatchRecord>& records, const std::string& which,
                               pid_t pid) {
  std::vector<const PatchRecord*> found;
  for (const auto& r : records)
    if (r.matches(which)) found.push_back(&r);
  if (found.empty()) fail(ErrorCode::not_found, "process {} has no patch `{}' applied", pid, which);
  if (found.size() > 1) fail("process {}: `{}' names several patches; give the patch id", pid, which);
  return *found[0];
}

// revert_patch(), on the thread that traces the process.
OperationResult revert_here(const std::string& which, pid_t pid, const OperationOptions& options) {
  OperationResult result;
  result.pid = pid;
  auto start = Clock::now();
  std::optional<RealtimePriority> priority;  // for a global stop only (see apply_patch)
  try {
    {
      // A per-thread transition in progress is driven by the graft that
      // started it (which holds the process traced and its lock): asked to
      // reverse, without taking the lock it holds.
      TargetSession peek(pid, std::nullopt);
      if (peek.scan().problems.empty()) {
        const PatchRecord& rec = find_record(peek.records(), which, pid);
        if (rec.in_transition() && transition_driven(peek.memory(), rec)) {
          result.patch_id = rec.id;
          result.patch_name = rec.name;
          result.patch_sha256 = rec.sha256;
          int driver = revert_during_transition(rec, pid, peek.memory(), options.timeout_s);
          result.notes.push_back(fmt::format("the apply in progress (graft pid {}) reversed its "
                                             "transition: every thread runs the old code again",
                                             driver));
          result.ok = true;
          result.total_ms = ms_since(start);
          return result;
        }
        // Another patch's transition: its graft holds the lock, which is
        // waited for below (refusing here would fail a revert started
        // while another graft's revert ends).
      }
    }
    // Outlives the session's tracer, whose breakpoint handler reads its
    // transition plan.
    std::unique_ptr<SwitchMethod> method;
    TargetSession session(pid, options.timeout_s);
    recover_before(session, options, result);
    if (!session.scan().problems.empty())
      fail("{}; refusing to change this process", session.scan().problems.front());
    const PatchRecord& rec = find_record(session.records(), which, pid);
    result.patch_id = rec.id;
    result.patch_name = rec.name;
    result.patch_sha256 = rec.sha256;

    // As asked, else the model the patch was applied with; the stop model
    // if a per-thread revert was not asked for and cannot be done.
    bool asked = options.model.has_value();
    result.model = options.model.value_or(rec.model);
    method = make_switch_method(revert_switch_kind(result.model, rec));
    try {
      method->prepare_backward(session, rec);
    } catch (const Error& e) {
      if (asked || method->kind() != SwitchKind::per_thread) throw;
      result.notes.push_back(fmt::format("reverted with the stop model: {}", e.what()));
      result.model = Model::stop;
      method = make_switch_method(revert_switch_kind(result.model, rec));
      method->prepare_backward(session, rec);
    }
    if (method->kind() != SwitchKind::per_thread) priority.emplace();
    wait_out_vfork(pid, options.timeout_s);
    result.threads = session.attach(method->traces_clones()).thread_count();
    // pre_unpatch cannot veto (as in the kernel): a failure is reported and
    // the revert goes on, as the operator asked.
    bool active = rec.state == RecordState::Active;
    auto callback = [&](Callback::Kind kind, const char* suffix) {
      if (active)
        if (auto run = run_callback(session, rec, kind, options.timeout_s); run && !run->ok())
          result.notes.push_back(run->describe(kind, rec) + suffix);
    };
    callback(Callback::Kind::PreUnpatch, "");
    OperationOptions backward = options;
    backward.model = result.model;  // the record's model if none was asked
    BackwardContext c{session, rec, backward, result,
                      // post_unpatch: after the switch back, while the code is still mapped.
                      [&] { callback(Callback::Kind::PostUnpatch, ""); },
                      // A per-thread revert that turns back leaves the patch
                      // applied: post_patch undoes what pre_unpatch did, as in
                      // the kernel.
                      [&] { callback(Callback::Kind::PostPatch, " (the patch stays applied)"); }};
    method->backward(c);
    session.detach();
    result.ok = true;
  } catch (const TransitionStuck& e) {
    result.error = e.what();
    result.error_code = e.code();
    result.left_in_transition = true;
  } catch (const std::exception& e) {
    result.error = e.what();
    result.error_code = error_code_of(e);
  }
  result.total_ms = ms_since(start);
  return result;
}

}  // namespace

OperationResult revert_patch(const std::string& which, pid_t pid, const OperationOptions& options) {
  OperationResult result;
  result.pid = pid;
  std::optional<Footprint> before;
  try {
    check_process_changeable(pid);
    before = read_footprint(pid);
    run_tracing_thread([&] { result = revert_here(which, pid, options); });
  } catch (const std::exception& e) {
    result.error = e.what();
    result.error_code = error_code_of(e);
  }
  if (!result.ok && !result.left_in_transition) name_an_exit(pid, "revert", result.error, result.error_code);
  if (!result.ok && !result.left_in_transition) verify_unchanged(pid, before, result.unchanged, result.left);
  return result;
}

}  // namespace graft
