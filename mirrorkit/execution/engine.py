"""The papermill engine the runner uses: nbclient as papermill's own, plus two changes.

- It accepts a started kernel with its connected client (`kernel=`, from mirrorkit.execution.kernels.KernelPool)
  and leaves its shutdown to the caller, so that start-up and shutdown happen off the critical path.
- It saves the output notebook at most once a second while cells run (papermill saves it before and
  after every cell) and always when the notebook ends, also after a timeout or a dead kernel.
- Given a `stop` event, it starts no further cell once the event is set (the runner sets it on Ctrl-C).

papermill finds it through its entry point (pyproject.toml: papermill.engine, name "mirrorkit") when
papermill.engines is imported; import papermill before importing this module directly, since papermill
loads the entry point while it is imported.
"""
from __future__ import annotations

# Not public API: papermill's NotebookExecutionManager and PapermillNotebookClient, and nbclient's
# client attribute `kc` (set below); hence papermill<3 and nbclient<0.12 in pyproject.toml.
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager
from papermill.log import logger
from papermill.utils import remove_args

SAVE_EVERY_S = 1.0


class RunInterrupted(Exception):
    """The run was interrupted before this cell started."""


class ThrottledSaves(NotebookExecutionManager):
    final = False
    stop = None             # a threading.Event: the run was interrupted (first Ctrl-C)
    abort = None            # a threading.Event: the run is aborted (second Ctrl-C)

    def cell_complete(self, cell, cell_index=None, **kwargs):
        super().cell_complete(cell, cell_index, **kwargs)
        # checked after a cell rather than before the next, so that no unexecuted cell gets marked
        # "completed" by papermill (it completes a cell in a finally clause); when the run is aborted the
        # KeyboardInterrupt in flight must not be replaced by this
        if self.abort is not None and self.abort.is_set():
            return
        if (self.stop is not None and self.stop.is_set() and cell_index is not None
                and cell_index < len(self.nb.cells) - 1):
            raise RunInterrupted(f"the run was interrupted; cells after {cell_index} were not run")

    def save(self, **kwargs):
        due = (self.now() - self.last_save_time).total_seconds() >= SAVE_EVERY_S
        if self.final or due:
            super().save(**kwargs)

    def notebook_complete(self, **kwargs):
        self.final = True
        return super().notebook_complete(**kwargs)


class RecordEngine(NBClientEngine):
    @classmethod
    def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                         autosave_cell_every=30, stop=None, abort=None, **kwargs):
        nb_man = ThrottledSaves(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                                autosave_cell_every=autosave_cell_every)
        nb_man.stop = stop
        nb_man.abort = abort
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, kernel=None, **kwargs):
        kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
        km = kernel.manager if kernel is not None else None
        client = PapermillNotebookClient(nb_man, km=km, timeout=execution_timeout, startup_timeout=start_timeout,
                                         kernel_name=kernel_name, log=logger, log_output=log_output, stdout_file=stdout_file,
                                         stderr_file=stderr_file, **kwargs)
        if kernel is not None:
            client.kc = kernel.client       # nbclient then neither starts a kernel nor connects
            client.kc.allow_stdin = False
        return client.execute()
