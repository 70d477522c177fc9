// graft apply: patch file -> plan checked against the running process ->
// region created and filled -> stop model switches -> record marked active.
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <optional>
#include <set>

#include "arch/x86_64/jump.h"
#include "arch/x86_64/relocation.h"
#include "arch/x86_64/sigreturn_frame.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault_point.h"
#include "common/interrupt.h"
#include "common/realtime_priority.h"
#include "consistency/per_thread_model.h"
#include "consistency/return_traps.h"
#include "loader/apply_plan.h"
#include "loader/callbacks.h"
#include "loader/code_slack.h"
#include "loader/footprint.h"
#include "process/proc_status.h"
#include "loader/ifunc.h"
#include "loader/loaded_objects.h"
#include "elf/elf_file.h"
#include "loader/operations.h"
#include "loader/placement.h"
#include "loader/region.h"
#include "loader/unwind_registration.h"
#include "loader/recovery.h"
#include "loader/target_session.h"
#include "process/thread_syscall.h"
#include "process/tracing_thread.h"
#include "loader/runtime_binding.h"
#include "loader/per_thread.h"
#include "loader/switch_method.h"
#include "loader/symbol_resolver.h"
#include "loader/revert_during_transition.h"

namespace graft {

namespace {

class ApplyJob {
 public:
  ApplyJob(const Patch& patch, TargetSession& session, const OperationOptions& options, OperationResult& result)
      : patch_(patch), session_(session), pid_(session.pid()), options_(options), result_(result),
        memory_(session.memory()), records_(session.records()) {
    draft_.pid = pid_;
  }

  // The passes of an apply. Planning reads the process with its threads
  // running; from create_region() on, each step is undone if a later one
  // fails.
  void run() {
    // The tracer ends before the method's transition plan, which its
    // breakpoint handler reads.
    TracingScope scope(session_);
    refuse_go_program();
    recover_before(session_, options_, result_);
    target_ = find_target();
    refuse_unreadable_records();
    choose_model();
    plan_functions();
    if (patch_.cumulative) plan_restored_functions();

    // A thread in vfork() cannot be stopped until its child lets it go.
    wait_out_vfork(pid_, options_.timeout_s);
    result_.threads = session_.attach(method_->traces_clones()).thread_count();
    bind_runtime_functions();
    try {
      plan_region();
      resolve_externals();
      // Without IFUNCs to resolve in the process, the image is complete
      // before anything is mapped.
      Bytes image = ifuncs_.empty() ? relocate() : Bytes{};
      Bytes gates = method_->gates(draft_, layout_);
      throw_if_interrupted("before the patch region was created");
      create_region(session_, layout_, patch_.id());
      fault_point("region-created");
      session_.tracer().resume_all();
      switch_to_patch(std::move(image), gates);
    } catch (...) {
      if (!region_in_use_) remove_injected_runtime();
      throw;
    }
  }

 private:
  void refuse_unreadable_records() {
    if (!session_.scan().problems.empty())
      fail("{}; refusing to change this process", session_.scan().problems.front());
    for (const auto& r : records_)
      if (r.sha256 == patch_.sha256)
        fail("process {}: patch {} is already applied (state {})", pid_, r.label(), state_name(r.state));
    refuse_if_in_transition(records_, pid_, memory_);
  }

  void choose_model() {
    if (patch_.cumulative) choose_replaced();
    draft_.record.model = options_.model.value_or(kDefaultModel);
    if (per_thread(draft_.record.model) && patch_.cumulative && options_.force)
      fail("process {}: --force cannot switch a cumulative patch: a thread moved unchecked could still "
           "be running the code of a patch it replaces, which is unmapped when the transition ends",
           pid_);
    method_ = make_switch_method(apply_switch_kind(draft_.record.model, patch_.cumulative, patch_.functions.size()));
  }

  // The region exists and the threads run: fill it, run pre_patch, switch,
  // run post_patch. On failure the region is removed again (after
  // post_unpatch, if pre_patch had run), unless a per-thread transition
  // could be neither completed nor undone (TransitionStuck).
  void switch_to_patch(Bytes image, const Bytes& gates) {
    PatchRecord& record = draft_.record;
    bool pre_patch_done = false;
    try {
      // The record first: from here on, a later graft knows what this
      // region is, even if this one dies (see recovery.h).
      record.state = RecordState::Loading;
      memory_.write({layout_.address}, encode_record(record));
      fault_point("record-written");
      if (!ifuncs_.empty()) {
        run_ifunc_resolvers();
        image = relocate();
      }
      memory_.write({layout_.address + layout_.image_offset}, image);
      if (auto thunk = call_return_thunk_address(record)) memory_.write({*thunk}, arch::kCallReturnThunk);
      fault_point("image-written");
      // Before any thread can run the new code (the pre_patch callback may).
      register_unwind_info(session_, record, options_.timeout_s);
      fault_point("unwind-registered");
      register_stubs_unwind_info();

      if (auto run = run_callback(session_, record, Callback::Kind::PrePatch, options_.timeout_s)) {
        if (!run->ok()) fail("process {}: {}; patch not applied", pid_, run->describe(Callback::Kind::PrePatch, record));
        if (static_cast<int32_t>(run->result.value) != 0)
          fail("process {}: {} (a veto); patch not applied", pid_,
               run->describe(Callback::Kind::PrePatch, record));
      }
      pre_patch_done = true;

      ForwardContext c{session_, draft_, gates, options_, result_, target_, [this] { mark_replaced(); }};
      try {
        method_->forward(c);
      } catch (const TransitionStuck&) {
        region_in_use_ = true;
        throw;
      }
    } catch (...) {
      if (region_in_use_) throw;
      try {
        if (pre_patch_done)
          if (auto run = run_callback(session_, record, Callback::Kind::PostUnpatch, options_.timeout_s);
              run && !run->ok())
            result_.notes.push_back(run->describe(Callback::Kind::PostUnpatch, record));
        deregister_unwind_info(session_, record, options_.timeout_s);
        remove_region(session_, layout_.address, layout_.size);
        session_.tracer().resume_all();
      } catch (const Error&) {
        // The process is gone or unreachable: nothing left to clean.
      }
      throw;
    }
    // Switched. What remains cannot undo the apply: it is reported.
    if (!replaced_.empty()) settle_replace();
    for (const auto* r : replaced_) {
      // No thread is in the replaced patch's code and no jump leads there.
      try {
        deregister_unwind_info(session_, *r, options_.timeout_s);
        remove_region(session_, r->region_start, r->region_size);
        result_.notes.push_back(fmt::format("replaced patch {}", r->label()));
      } catch (const Error& e) {
        result_.notes.push_back(fmt::format("replaced patch {}, but could not unmap it: {}", r->label(), e.what()));
      }
    }
    if (auto run = run_callback(session_, record, Callback::Kind::PostPatch, options_.timeout_s); run && !run->ok())
      result_.notes.push_back(run->describe(Callback::Kind::PostPatch, record) + " (the patch stays applied)");
    session_.detach();
  }

  // The .eh_frame of every stub of the region (the exit stubs, the stop
  // model's return trap), registered once, before any of them can serve.
  // Without it, the stubs may not serve where libgcc unwinds
  // (consistency/return_traps.h).
  void register_stubs_unwind_info() {
    std::string missing;
    if (!stub_unwind_info_disabled()) {
      const UnwindRecord& u = draft_.record.stub_unwind;
      if (u.eh_frame) memory_.write({u.eh_frame}, arch::return_stubs_eh_frame(u.eh_frame, method_->described_stubs(draft_)));
      missing = register_stub_unwind_info(session_, draft_.record, options_.timeout_s);
    }
    draft_.stubs_unwind_missing = missing;
    fault_point("stub-unwind-registered");
  }

  // Right after the record is marked applied: the patches a cumulative one
  // replaces are marked for removal (killed in between, recovery marks
  // them: see recovery.cc).
  void mark_replaced() {
    if (replaced_.empty()) return;
    fault_point("marked-applied");
    for (const auto* r : replaced_) write_record_state(memory_, *r, RecordState::Reverting);
  }

  // The patches a cumulative patch replaces: every active patch of the same
  // target object.
  void choose_replaced() {
    for (const auto& r : records_) {
      if (r.build_id != patch_.target.build_id) continue;
      if (r.state == RecordState::Loading)
        fail("process {}: patch {} is still loading (left by an interrupted graft); revert it "
             "before applying a cumulative patch",
             pid_, r.label());
      if (r.state == RecordState::Active) replaced_.push_back(&r);
    }
    draft_.replaces = !replaced_.empty();
  }

  bool replaces(const PatchRecord& r) const {
    return std::find(replaced_.begin(), replaced_.end(), &r) != replaced_.end();
  }

  // Functions of replaced patches that the cumulative patch leaves out go
  // back to their original code, as the method plans it. Either way they
  // are listed in the record until the switch is over, so that a graft
  // killed midway leaves entries recovery can put back.
  void plan_restored_functions() {
    std::set<uint64_t> done;
    for (const auto& f : draft_.record.functions) done.insert(f.address);
    for (const auto* r : replaced_) {
      // Its region goes: no thread may be in its code, nor in its gates (a
      // thread that entered one just before its own transition ended, and
      // has not run since, is still there).
      draft_.plan.busy.push_back({r->code(), "the code of patch " + r->label()});
      if (r->has_gates())
        draft_.plan.busy.push_back(
            {{r->transition.gates, r->transition.gates_size}, "the gates of patch " + r->label()});
      for (const auto& f : r->functions) {
        if (!done.insert(f.address).second) continue;
        const PatchRecord* owner = nullptr;
        const FunctionRecord* top = newest_redirect(records_, f.address, nullptr, &owner);
        if (!top || !replaces(*owner))
          fail("process {}: `{}' is patched by {}, which a cumulative patch of {} cannot replace",
               pid_, f.symbol, owner ? owner->label() : std::string("nothing"), target_.path);
        Bytes now = memory_.read({f.site}, arch::kRedirectSize);
        if (now != top->redirect)
          fail("process {}: the entry of `{}' no longer holds the redirection of patch {}", pid_,
               f.symbol, owner->label());
        method_->plan_restore(draft_, f, top->original, now, memory_);
      }
    }
  }

  // The runtime functions the patch calls are bound before placement: an
  // injected runtime takes address space.
  void bind_runtime_functions() {
    std::set<std::string> needed;
    for (const auto& e : patch_.externals)
      if (e.where == ExternalSymbol::Where::Library && is_runtime_function(e.name)) needed.insert(e.name);
    if (needed.empty()) return;
    runtime_ = bind_runtime(needed, session_, target_);
    if (runtime_.injected) {
      result_.notes.push_back(runtime_.provider);
      session_.reread_maps();
    }
    session_.tracer().resume_all();
  }

  void remove_injected_runtime() {
    if (!runtime_.injected) return;
    try {
      remove_region(session_, runtime_.injected->region_start, runtime_.injected->region_size);
      session_.tracer().resume_all();
    } catch (const Error&) {
    }
  }

  LoadedObject find_target() {
    for (const auto& o : session_.objects())
      if (!o.build_id.empty() && o.build_id == patch_.target.build_id) return o;
    fail("process {} does not map the patch's target {} (build-id {})", pid_, patch_.target.path,
         patch_.target.build_id.substr(0, 16));
  }

  // Each function as the process holds it, checked by the method.
  void plan_functions() {
    for (const auto& f : patch_.functions) {
      draft_.planned.push_back(plan_function(f, target_.bias, memory_, records_, pid_, target_.path));
      const PlannedFunction& p = draft_.planned.back();
      try {
        method_->check(p, patch_.cumulative, memory_);
      } catch (const Error& e) {
        if (!may_give_way()) throw;
        give_way(e.what());
      }

      draft_.plan.busy.push_back({{p.address, f.size}, "function `" + p.name + "'"});
      for (const auto& c : p.cold) draft_.plan.busy.push_back({c, "function `" + p.name + "' (cold part)"});
      if (p.below)
        draft_.plan.busy.push_back({{p.below->replacement, std::max<uint64_t>(p.below->replacement_size, 1)},
                                    "`" + p.name + "' of patch " + p.stacked_on->label()});

      FunctionRecord fr;
      fr.symbol = f.symbol;
      fr.demangled = f.demangled;
      fr.file = f.file;
      fr.address = p.address;
      fr.size = f.size;
      fr.site = p.site;
      // The code the redirect enters. Behind a thunk, a thread in the
      // replacement has the thunk's return address on its stack, so the
      // thunk's range alone tells whether the new code is busy.
      fr.replacement_size = f.thunk ? f.thunk->size : f.replacement_size;
      fr.original = p.original;
      fr.redirect = p.entry;  // placeholder until the image base is known
      fr.cold_parts = p.cold;
      draft_.record.functions.push_back(std::move(fr));
      draft_.plan.writes.push_back({p.name, {p.site}, p.entry, {}});
    }
  }

  // A function the method cannot switch: the per-thread default gives way
  // to the stop model, which can patch it, and the gated stop to the direct
  // one. A model the operator chose is refused with the reason.
  bool may_give_way() const {
    return method_->kind() == SwitchKind::gated_stop ||
           (method_->kind() == SwitchKind::per_thread && !options_.model);
  }

  void give_way(const std::string& why) {
    if (method_->kind() == SwitchKind::per_thread) {
      draft_.record.model = result_.model = Model::stop;
      result_.notes.push_back(
          fmt::format("applied under the stop model, not the default {}: {}", kDefaultModel, why));
    } else {
      result_.notes.push_back(fmt::format("no switch gates ({}): a graft killed between two entry writes "
                                          "would leave the patch half applied until the next graft repairs it",
                                          why));
    }
    method_ = make_switch_method(SwitchKind::direct_stop);
  }

  // Go code has no DWARF CFI in .eh_frame (its frames are described by
  // .gopclntab, which graft does not read): no thread running Go code
  // could ever be checked, and a transition could neither finish nor
  // prove its rollback clean. Refused before anything is written.
  void refuse_go_program() {
    std::string exe = fmt::format("/proc/{}/exe", pid_);
    bool go = false;
    try {
      ElfFile elf(exe, exe);
      go = elf.section(".gopclntab") || elf.section(".go.buildinfo");
    } catch (const Error&) {
      return;  // not readable as ELF: the checks that follow say what is wrong
    }
    if (go)
      fail("process {} runs a Go program: graft cannot check the stacks of threads running Go code "
           "(Go describes its frames in .gopclntab, not in DWARF CFI), so it cannot patch it safely",
           pid_);
  }

  // The record's fields, the region's layout (record pages, the method's
  // pages, the image) and address, and each entry's jump.
  void plan_region() {
    PatchRecord& record = draft_.record;
    record.id = patch_.id();
    record.name = patch_.name;
    record.sha256 = patch_.sha256;
    record.target_path = target_.path;
    record.build_id = patch_.target.build_id;
    record.code_size = patch_.layout.code_size;
    record.applied_at = static_cast<int64_t>(std::time(nullptr));
    record.graft_pid = getpid();
    record.seq = records_.empty() ? 1 : records_.back().seq + 1;
    record.cumulative = patch_.cumulative;
    record.settled = replaced_.empty();
    for (const auto& c : patch_.callbacks) record.callbacks.push_back({c.kind, c.function, UINT64_MAX});
    // Size the record with the widest addresses it could hold.
    PatchRecord widest = record;
    widest.region_size = widest.image_base = UINT64_MAX;
    for (auto& f : widest.functions) {
      f.replacement = UINT64_MAX;
      if (f.restores) f.replacement_size = UINT64_MAX;
    }
    widest.unwind = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX};
    widest.stub_unwind = widest.unwind;
    method_->widen(widest);
    record.callbacks.clear();
    layout_.image_offset = record_pages(widest);
    method_->lay_out(draft_, layout_, list_threads(pid_).size());
    layout_.image = patch_.layout;
    layout_.size = layout_.image_offset + patch_.layout.memory_size();
    layout_.address = choose_region_address(session_.maps(), target_, layout_.size, pid_);
    method_->place(draft_, layout_);

    uint64_t base = layout_.address + layout_.image_offset;
    record.region_start = layout_.address;
    record.region_size = layout_.size;
    record.image_base = base;
    for (size_t i = 0; i < patch_.functions.size(); ++i) {
      auto& fr = record.functions[i];
      fr.replacement = base + patch_.functions[i].entry_offset();
      auto jump = arch::redirect_bytes(fr.site, fr.replacement);
      if (!jump) fail("process {}: patch region out of jump range of `{}'", pid_, fr.symbol);
      fr.redirect = *jump;
      draft_.plan.writes[i].bytes = *jump;
    }
    for (const auto& c : patch_.callbacks)
      record.callbacks.push_back({c.kind, c.function, base + c.offset});
  }

  // The address of every external symbol, except the IFUNCs whose resolver
  // must run in the process (ifuncs_, settled by run_ifunc_resolvers()).
  void resolve_externals() {
    SymbolResolver resolver(session_, target_);
    if (patch_.layout.unwind_object)
      plan_unwind_registration(draft_.record, resolver, session_, draft_.record.image_base + patch_.layout.eh_frame,
                               draft_.record.image_base + patch_.layout.unwind_object);
    // Nothing to describe (and nothing to ask libgcc about) without a stub.
    if (arch::ReturnStubs stubs = method_->described_stubs(draft_); stubs.exit_count || stubs.stop_stub)
      plan_stub_unwind_registration(draft_.record, resolver, session_, draft_.stubs_unwind + kUnwindObjectSize,
                                    draft_.stubs_unwind);
    for (size_t i = 0; i < patch_.externals.size(); ++i) {
      const auto& e = patch_.externals[i];
      if (e.where == ExternalSymbol::Where::Target) {
        addresses_.push_back(target_.bias + e.value);
      } else if (auto it = runtime_.addresses.find(e.name); it != runtime_.addresses.end()) {
        addresses_.push_back(it->second);
      } else {
        SymbolLookup l = resolver.lookup(e.name);
        addresses_.push_back(l.address);
        if (!l.note.empty()) result_.notes.push_back(l.note);
        if (l.call) ifuncs_.emplace_back(i, *l.call);
      }
    }
  }

  // After the record is written; the thunk first, for a kill-safe return.
  void run_ifunc_resolvers() {
    if (auto thunk = call_return_thunk_address(draft_.record)) memory_.write({*thunk}, arch::kCallReturnThunk);
    for (const auto& [index, call] : ifuncs_) {
      IfuncResult r = run_ifunc_resolver(session_, draft_.record, call, options_.timeout_s);
      addresses_[index] = r.address;
      result_.notes.push_back(r.note);
    }
    fault_point("ifuncs-resolved");
  }

  // The record settled (per_thread.h): the functions put back leave it,
  // and a per-thread patch's old paths are rebased. Killed before, the
  // record still lists them; the next graft settles it (recovery.h). The
  // patch is applied: a failure here is a note, never a reason to remove
  // its region.
  void settle_replace() {
    draft_.record.state = RecordState::Active;
    try {
      graft::settle_replace(memory_, draft_.record);
    } catch (const Error& e) {
      // Old paths may still lead into the replaced patches: they stay
      // mapped (marked for removal, no longer this apply's to unmap) until
      // a graft settles the record.
      result_.notes.push_back(fmt::format("could not settle the record ({}); the replaced patches stay "
                                          "mapped until the next graft settles it",
                                          e.what()));
      replaced_.clear();
    }
  }

  Bytes relocate() {
    uint64_t base = layout_.address + layout_.image_offset;
    Bytes image = patch_.image;
    for (const auto& r : patch_.relocations) {
      uint64_t S = r.external >= 0 ? addresses_[r.external] : base + r.image_offset;
      std::string context =
          r.external >= 0 ? fmt::format("process {}: reference to `{}'", pid_, patch_.externals[r.external].name)
                          : fmt::format("process {}: patch-internal reference", pid_);
      arch::apply_relocation(r.type, image.data() + r.offset, base + r.offset, S, r.addend, context);
    }
    return image;
  }

  const Patch& patch_;
  TargetSession& session_;
  const pid_t pid_;
  const OperationOptions& options_;
  OperationResult& result_;
  // The session's, named for brevity.
  const ProcessMemory& memory_;
  const std::vector<PatchRecord>& records_;
  LoadedObject target_;
  std::vector<const PatchRecord*> replaced_;  // by a cumulative patch
  RuntimeBinding runtime_;
  ApplyDraft draft_;
  RegionLayout layout_;
  std::unique_ptr<SwitchMethod> method_;
  bool region_in_use_ = false;  // a stuck transition: the region must stay
  std::vector<uint64_t> addresses_;                   // of patch_.externals
  std::vector<std::pair<size_t, IfuncCall>> ifuncs_;  // still to resolve in the process
};

}  // namespace

OperationResult apply_patch(const Patch& patch, pid_t pid, const OperationOptions& options) {
  OperationResult result;
  result.pid = pid;
  result.patch_id = patch.id();
  result.patch_name = patch.name;
  result.model = options.model.value_or(kDefaultModel);
  result.patch_sha256 = patch.sha256;
  auto start = Clock::now();
  std::optional<Footprint> before;
  try {
    check_process_changeable(pid);
    before = read_footprint(pid);
  } catch (const Error& e) {
    result.error = e.what();
    result.error_code = e.code();
    name_an_exit(pid, "apply", result.error, result.error_code);
    result.total_ms = ms_since(start);
    return result;
  }
  // Real-time priority shortens a global stop; the per-thread models have
  // none, and graft holding a core at SCHED_FIFO would delay the target's
  // threads instead.
  try {
    run_tracing_thread([&] {
      std::optional<RealtimePriority> priority;
      if (!per_thread(result.model)) priority.emplace();
      try {
        TargetSession session(pid, options.timeout_s);
        ApplyJob(patch, session, options, result).run();
        result.ok = true;
      } catch (const TransitionStuck& e) {
        result.error = e.what();
        result.error_code = e.code();
        result.left_in_transition = true;
      }
    });
  } catch (const std::exception& e) {
    result.error = e.what();
    result.error_code = error_code_of(e);
    name_an_exit(pid, "apply", result.error, result.error_code);
  }
  if (!result.ok && !result.left_in_transition) verify_unchanged(pid, before, result.unchanged, result.left);
  result.total_ms = ms_since(start);
  return result;
}

}  // namespace graft
