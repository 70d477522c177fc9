// The process an operation (apply, revert, recovery) works on, opened once
// on the thread that traces it: its lock, its memory, its mappings, the
// objects loaded in it, graft's records there and, while attached, its
// tracer. Every step of the operation takes the session whole (as rr's
// Task/AddressSpace), instead of rebuilding this state or taking it in
// pieces.
//
// ptrace binds a tracee to the thread that attached it: the session's
// tracer is used only on the thread that attached it, and ended there
// (process/tracing_thread.h).
#pragma once
#include <sys/types.h>

#include <optional>
#include <vector>

#include "loader/loaded_objects.h"
#include "loader/patch_record.h"
#include "process/maps.h"
#include "process/memory.h"
#include "process/process_lock.h"
#include "process/tracer.h"

namespace graft {

class TargetSession {
 public:
  // Opens `pid`: takes its process lock, waiting up to `lock_timeout_s` for
  // another graft (none for recovery, which attaches first: only one
  // tracer can hold the process), then reads its mappings and records.
  // Throws graft::Error naming the process.
  TargetSession(pid_t pid, std::optional<double> lock_timeout_s);
  TargetSession(const TargetSession&) = delete;
  TargetSession& operator=(const TargetSession&) = delete;

  pid_t pid() const { return pid_; }
  const ProcessMemory& memory() const { return memory_; }
  // As read at open or by the last reread_maps()/reread().
  const std::vector<Mapping>& maps() const { return maps_; }
  // The records as read; recovery updates its copy of a record's state as
  // it writes it.
  std::vector<PatchRecord>& records() { return scan_.records; }
  const std::vector<PatchRecord>& records() const { return scan_.records; }
  const RecordScan& scan() const { return scan_; }
  // Read on first use, for the mappings as they are then; kept until
  // reread() (graft's own regions are no loaded objects).
  const std::vector<LoadedObject>& objects();

  // After the process's mappings changed (a region graft mapped).
  void reread_maps();
  // After a repair changed mappings and records; references to objects()
  // and records() are no longer valid.
  void reread();

  // Attaches (stopping every thread; with `trace_clones`, threads created
  // meanwhile are traced from their first instruction). Throws if already
  // attached.
  Tracer& attach(bool trace_clones = false);
  bool attached() const { return tracer_.has_value(); }
  Tracer& tracer();  // throws if not attached
  // Leaves every thread running and untraced.
  void detach();
  // detach() for unwinding paths: never throws. Anything that a tracer's
  // handlers read (a transition's plan) must outlive this call.
  void end_tracing() noexcept;

 private:
  pid_t pid_;
  std::optional<ProcessLock> lock_;
  ProcessMemory memory_;
  std::vector<Mapping> maps_;
  RecordScan scan_;
  BuildIdCache build_ids_;
  std::optional<std::vector<LoadedObject>> objects_;
  std::optional<Tracer> tracer_;
};

// Ends the session's tracing when a scope is left, however it is left.
class TracingScope {
 public:
  explicit TracingScope(TargetSession& session) : session_(session) {}
  ~TracingScope() { session_.end_tracing(); }
  TracingScope(const TracingScope&) = delete;
  TracingScope& operator=(const TracingScope&) = delete;

 private:
  TargetSession& session_;
};

}  // namespace graft
