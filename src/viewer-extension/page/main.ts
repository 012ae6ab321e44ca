/**
 * The page the plugin serves at /viewer/?studyInstanceUid=<uid>[&token=…][&dicomwebUrl=…][&render=cpu]
 * [&sopInstanceUid=…][&label=…][&api=<plugin base URL>].
 * Sets body data attributes other tools wait on: ready="true" once the image and the overlay have
 * rendered, error=<message> on failure, renderer=gpu|cpu, overlayLabel/overlayVisible/overlayOpacity,
 * sourceFrom=address|sr|first-image, sourceProblem=<why the SR's image reference was not used>.
 */
import {
  attachTriageOverlay,
  createFindingsPanel,
  createOverlayControls,
  createStackViewport,
  enableReadingTools,
  initCornerstone,
  loadStudyImage,
  loadTriageStudy,
  srSourceImage,
} from "../lib/index.ts";

/** Where the plugin proxies the PACS DICOMweb root for this page when nothing else is named (see index.ts). */
const DEFAULT_DICOMWEB = "./dicom-web";

const statusEl = document.getElementById("status")!;
const body = document.body;

async function main() {
  const q = new URLSearchParams(location.search);
  const studyInstanceUid = q.get("studyInstanceUid");
  if (!studyInstanceUid) throw new Error("no studyInstanceUid in the page address (?studyInstanceUid=<uid>)");
  const token = q.get("token") ?? undefined;
  const apiBaseUrl = q.get("api") ?? "";
  const dicomwebParam = q.get("dicomwebUrl") ?? undefined;

  const renderer = initCornerstone({ cpuRendering: q.get("render") === "cpu", ...(token ? { token } : {}) });
  body.dataset.renderer = renderer;

  const study = await loadTriageStudy({ apiBaseUrl, studyInstanceUid, dicomwebUrl: dicomwebParam ?? DEFAULT_DICOMWEB, ...(token ? { token } : {}) });
  const dicomwebUrl = dicomwebParam ?? study.dicomwebUrl ?? DEFAULT_DICOMWEB;

  const viewportEl = document.getElementById("viewport") as HTMLDivElement;
  const viewport = createStackViewport(viewportEl);
  new ResizeObserver(() => viewport.getRenderingEngine().resize(true, true)).observe(viewportEl);
  // The image the results are about: named in the address, else the SR's Image Library reference, else the study's first radiograph.
  const auth = token ? { token } : {};
  // An SR whose reference cannot be read is said on the page (the image shown may then not be the one the results are about).
  let sourceProblem: string | undefined;
  const fromSr =
    study.sourceSopInstanceUid ??
    (study.srSopInstanceUid
      ? await srSourceImage(dicomwebUrl, studyInstanceUid, study.srSopInstanceUid, auth).catch((e: unknown) => {
          sourceProblem = `the SR's source image reference could not be read (${e instanceof Error ? e.message : String(e)}): showing the study's first radiograph`;
          return undefined;
        })
      : undefined);
  if (sourceProblem) {
    body.dataset.sourceProblem = sourceProblem;
    console.warn(sourceProblem);
  }
  const sopInstanceUid = q.get("sopInstanceUid") ?? fromSr;
  body.dataset.sourceFrom = q.get("sopInstanceUid") ? "address" : fromSr ? "sr" : "first-image";
  const image = await loadStudyImage(viewport, { dicomwebUrl, studyInstanceUid, ...auth, ...(sopInstanceUid ? { sopInstanceUid } : {}) });
  body.dataset.sopInstanceUid = image.sopInstanceUid;
  enableReadingTools(viewport);
  body.dataset.photometric = image.photometricInterpretation;
  body.dataset.imageSize = `${image.columns}x${image.rows}`;

  const label = q.get("label") ?? undefined;
  const overlay = await attachTriageOverlay(viewport, { apiBaseUrl, studyInstanceUid, study, ...(token ? { token } : {}), ...(label ? { label } : {}) });
  const panel = createFindingsPanel(document.getElementById("findings")!, {
    study,
    selected: overlay.state().label,
    onSelect: (l) => {
      panel.setSelected(l);
      void overlay.setFinding(l);
    },
  });
  createOverlayControls(document.getElementById("controls")!, overlay);
  const publish = () => {
    const s = overlay.state();
    body.dataset.overlayLabel = s.drawnLabel ?? "";
    body.dataset.overlayVisible = String(s.visible);
    body.dataset.overlayOpacity = String(s.opacity);
  };
  overlay.onChange(publish);
  publish();

  const problemEl = document.createElement("p");
  problemEl.className = "cxr-note cxr-problem";
  problemEl.setAttribute("role", "status");
  document.getElementById("controls")!.append(problemEl);
  overlay.onChange((st) => (problemEl.textContent = st.problem ?? ""));
  problemEl.textContent = overlay.state().problem ?? "";

  statusEl.textContent = [
    [image.patientName, image.patientId && `ID ${image.patientId}`, image.studyDate && formatDate(image.studyDate)].filter(Boolean).join(" · ") || "(no patient identification)",
    `Study ${studyInstanceUid}`,
    `${image.photometricInterpretation} ${image.columns}×${image.rows}`,
    renderer === "gpu" ? "WebGL" : "CPU rendering",
    study.origin === "plugin" ? "results from the plugin" : "results from the SR in the PACS",
    ...(sourceProblem && !q.get("sopInstanceUid") ? [sourceProblem] : []),
  ].join(" · ");
  body.dataset.ready = "true";
}

/** DICOM DA (YYYYMMDD) as YYYY-MM-DD. */
function formatDate(da: string): string {
  return /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : da;
}

main().catch((e: unknown) => {
  const message = e instanceof Error ? e.message : String(e);
  statusEl.textContent = `Cannot show the study: ${message}`;
  statusEl.classList.add("error");
  statusEl.setAttribute("role", "alert");
  body.dataset.error = message;
  console.error(e);
});
