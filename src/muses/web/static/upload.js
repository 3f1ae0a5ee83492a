// Shows the chosen (or dropped) photo before it is sent; the form works without this file.
const input = document.getElementById("file");
const drop = document.getElementById("drop");
const preview = document.getElementById("preview");
input.addEventListener("change", () => {
  const file = input.files[0];
  if (!file) return;
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  document.getElementById("drop-text").textContent = file.name;
});
["dragenter", "dragover"].forEach((e) => drop.addEventListener(e, () => drop.classList.add("over")));
["dragleave", "drop"].forEach((e) => drop.addEventListener(e, () => drop.classList.remove("over")));
