#include "loader/target_session.h"

#include "common/error.h"

namespace graft {

TargetSession::TargetSession(pid_t pid, std::optional<double> lock_timeout_s) : pid_(pid), memory_(pid) {
  if (lock_timeout_s) lock_.emplace(pid, *lock_timeout_s);
  reread();
}

const std::vector<LoadedObject>& TargetSession::objects() {
  if (!objects_) objects_ = loaded_objects(pid_, maps_, build_ids_);
  return *objects_;
}

void TargetSession::reread_maps() { maps_ = read_maps(pid_); }

void TargetSession::reread() {
  reread_maps();
  objects_.reset();
  scan_ = read_records(pid_, maps_, memory_);
}

Tracer& TargetSession::attach(bool trace_clones) {
  if (tracer_) fail("process {}: graft is already attached to it", pid_);
  tracer_.emplace(pid_, trace_clones);
  return *tracer_;
}

Tracer& TargetSession::tracer() {
  if (!tracer_) fail("process {}: graft is not attached to it", pid_);
  return *tracer_;
}

void TargetSession::detach() {
  if (!tracer_) return;
  tracer_->detach();
  tracer_.reset();
}

void TargetSession::end_tracing() noexcept { tracer_.reset(); }

}  // namespace graft
