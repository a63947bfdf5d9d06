// A stand-in for NetValve's hosted-fields SDK: it tokenises card fields onto the session's
// paymentToken by POSTing them to the sandbox, which is what the real SDK does on NetValve's side.
(function () {
  "use strict";
  const script = document.currentScript;
  const params = new URL(script.src).searchParams;
  async function tokenizeFields(fields) {
    const response = await fetch(new URL("/hpf/tokenize", script.src), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ paymentToken: params.get("paymentToken") }, fields)),
    });
    const body = await response.json();
    return response.ok ? body.paymentToken : Promise.reject(body);
  }
  window.Netvalve = { version: params.get("version"), tokenizeFields: tokenizeFields };
})();
