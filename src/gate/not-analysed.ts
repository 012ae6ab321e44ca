/**
 * How a study the image-content gate stops is recorded (the pipeline's rejection reason) and recognised
 * (the worklist's priority). A module of its own: the worklist needs the words, not the gate's model.
 */
export const NOT_ANALYSED = "not analysed: ";
