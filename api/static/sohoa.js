/* sohoa web interface: the little the pages need beyond HTML. Everything works without it. */
(function () {
  "use strict";

  // The drop zone: files dropped on it go into its file input and are sent at once.
  document.querySelectorAll("[data-dropzone]").forEach(function (form) {
    var input = form.querySelector('input[type="file"]');
    var busy = form.querySelector("[data-busy]");
    function on(e) { e.preventDefault(); form.classList.add("dragging"); }
    function off() { form.classList.remove("dragging"); }
    form.addEventListener("dragenter", on);
    form.addEventListener("dragover", on);
    form.addEventListener("dragleave", off);
    form.addEventListener("drop", function (e) {
      e.preventDefault();
      off();
      if (!e.dataTransfer || !e.dataTransfer.files.length) { return; }
      input.files = e.dataTransfer.files;
      if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
    });
    form.addEventListener("submit", function () {
      if (busy) { busy.hidden = false; }
      // confirming now would leave out the pages still being read (the server refuses it too)
      document.querySelectorAll('form[action$="/submit"] button[type="submit"]').forEach(function (b) {
        b.disabled = true;
      });
    });
  });

  // A form that cannot be undone (discarding a draft) asks first; it sat right under "Xác nhận".
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.dataset.confirm)) { e.preventDefault(); }
    });
  });

  // The job page: follow the job until it is done or failed.
  var STATES = {queued: "Đang chờ xử lý", running: "Đang xử lý các trang",
                finishing: "Đang hoàn tất (PDF/A, ký số, lập chỉ mục)", done: "Hoàn tất", failed: "Bị lỗi",
                discarded: "Đã bỏ (không chạy lại)"};
  var box = document.querySelector("[data-job-url]");
  if (box && !box.dataset.final) {
    var bar = box.querySelector("[data-job-progress]");
    var text = box.querySelector("[data-job-text]");
    var state = document.querySelector("[data-job-state]");
    var result = document.querySelector("[data-job-result]");
    var last = "";
    var poll = function () {
      fetch(box.dataset.jobUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) {
          if (r.status === 401) { ended(); return null; }
          if (!r.ok) { throw new Error(String(r.status)); }
          return r.json();
        })
        .then(function (job) {
          if (job === null) { return; }
          var label = STATES[job.state] || job.state;
          bar.max = job.pages || 1;
          bar.value = job.pagesDone;
          bar.textContent = job.pagesDone + "/" + job.pages;
          state.textContent = label;
          state.className = "state state-" + job.state;
          var line = job.pagesDone + "/" + job.pages + " trang đã xử lý" +
              (job.pagesFailed ? ", " + job.pagesFailed + " trang lỗi" : "") + ". " + label + ".";
          if (line !== last) { text.textContent = line; last = line; }
          if (job.state === "done" || job.state === "failed" || job.state === "discarded") {
            finish(job);
          } else {
            window.setTimeout(poll, 1000);
          }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    };
    // the session ended while the page was open: the job goes on, but this page can no longer follow it
    var ended = function () {
      text.textContent = "";
      var link = document.createElement("a");
      link.href = "/login?next=" + encodeURIComponent(window.location.pathname);
      link.textContent = "Đăng nhập lại";
      text.append("Phiên làm việc đã hết hạn nên trang này không theo dõi tiếp được (việc xử lý vẫn tiếp tục). ",
                  link, " để xem tiếp.");
    };
    var finish = function (job) {
      result.textContent = "";
      var div = document.createElement("div");
      var p = document.createElement("p");
      div.appendChild(p);
      if (job.state === "done") {
        div.className = "success";
        div.setAttribute("role", "status");
        p.textContent = "Đã số hóa xong: tài liệu " + job.docId + " đã được ký số và lưu vào hồ sơ " +
            job.dossierCode + ".";
        if (box.dataset.dossierLink) {
          var a = document.createElement("a");
          a.href = "/dossiers/" + encodeURIComponent(job.dossierCode) + "?doc=" + encodeURIComponent(job.docId);
          a.textContent = "Mở hồ sơ " + job.dossierCode;
          var q = document.createElement("p");
          q.appendChild(a);
          div.appendChild(q);
        }
      } else {
        div.className = "error";
        div.setAttribute("role", "alert");
        p.textContent = "Số hóa không thành công: " + ((job.error && job.error.message) || "lỗi không rõ");
        if (job.error && job.error.server) {
          var whose = document.createElement("p");
          whose.textContent = result.dataset.serverFault;
          div.appendChild(whose);
        }
        var actions = document.querySelector("[data-job-actions]");
        if (actions && job.state === "failed") { actions.hidden = false; }
      }
      result.appendChild(div);
      box.dataset.final = "1";
    };
    window.setTimeout(poll, 500);
  }
})();
